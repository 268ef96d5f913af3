"""The remembered Cookie header and Set-Cookie parse give what the jar itself gives."""

from __future__ import annotations

import http.cookiejar
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.http.client.cookies import MAX_COOKIES, CookieHeaderMemo, SetCookieMemo
from netproto_twisted.http.client.request import Request
from netproto_twisted.http.client.response import headers_message

START = 1_800_000_000.0

URLS = [
    "http://example.test/",
    "http://example.test/a/b",
    "https://example.test/a",
    "http://www.example.test/",
    "http://other.test/a",
    "http://127.0.0.1:8080/r",
    "http://example.test:8080/a",
]
SET_COOKIES = [
    "s=1; Path=/",
    "s=2; Path=/",
    "t=x; Path=/a",
    "u=1; Domain=.example.test; Path=/",
    "sec=1; Secure; Path=/",
    "short=1; Max-Age=5; Path=/",
    "gone=1; Max-Age=0; Path=/",
    'q="a b"; Path=/',
]


class _Headers:
    def __init__(self, *values: str, name: str = "Set-Cookie") -> None:
        self.values = values
        self.name = name

    def info(self) -> Any:
        return headers_message([(self.name, v) for v in self.values])


def _request(url: str, unverifiable: bool, cookie: bool) -> Request:
    req = Request(url, unverifiable=unverifiable)
    if cookie:
        req.add_header("Cookie", "mine=1")
    return req


action = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(SET_COOKIES), st.sampled_from(URLS)),
    st.tuples(st.just("ask"), st.sampled_from(URLS), st.booleans(), st.booleans()),
    st.tuples(st.just("wait"), st.integers(min_value=0, max_value=8)),
    st.tuples(st.just("edit"), st.sampled_from(["value", "path", "secure", "rest"])),
    st.tuples(st.just("clear")),
    st.tuples(st.just("block"), st.booleans()),
)


class CookieHeaderMemoTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.now = [START]
        self.patch(time, "time", lambda: self.now[0])

    def ask_both(self, memo: CookieHeaderMemo, jar: Any, url: str, unv: bool, own: bool) -> None:
        mine, theirs = _request(url, unv, own), _request(url, unv, own)
        memo.add_cookie_header(jar, mine)
        jar.add_cookie_header(theirs)
        self.assertEqual(mine.unredirected_hdrs, theirs.unredirected_hdrs, url)
        self.assertEqual(mine.headers, theirs.headers)

    @settings(max_examples=150, deadline=None)
    @given(st.lists(action, max_size=30), st.sampled_from(["plain", "lwp", "rfc2965"]))
    def test_same_headers_as_the_jar(self, actions: list[tuple[Any, ...]], kind: str) -> None:
        self.now[0] = START
        if kind == "lwp":
            jar: http.cookiejar.CookieJar = http.cookiejar.LWPCookieJar()
        else:
            jar = http.cookiejar.CookieJar()
        if kind == "rfc2965":
            jar.set_policy(http.cookiejar.DefaultCookiePolicy(rfc2965=True))
        memo = CookieHeaderMemo()
        for step in actions:
            if step[0] == "set":
                jar.extract_cookies(_Headers(step[1]), Request(step[2]))  # type: ignore[arg-type]
            elif step[0] == "ask":
                self.ask_both(memo, jar, step[1], step[2], step[3])
                self.ask_both(memo, jar, step[1], step[2], step[3])  # now remembered
            elif step[0] == "wait":
                self.now[0] += step[1]
            elif step[0] == "edit":
                for cookie in jar:
                    if step[1] == "value":
                        cookie.value = (cookie.value or "") + "x"
                    elif step[1] == "path":
                        # Moved, not changed in place: a jar keeps a cookie under its path,
                        # and one whose path changed where it lies cannot be cleared (the
                        # jar's own expiry then fails with a KeyError).
                        jar.clear(cookie.domain, cookie.path, cookie.name)
                        cookie.path = "/a"
                        jar.set_cookie(cookie)
                    elif step[1] == "secure":
                        cookie.secure = not cookie.secure
                    else:
                        cookie._rest["HttpOnly"] = None  # type: ignore[attr-defined]
                    break
            elif step[0] == "clear":
                jar.clear()
            else:
                jar._policy.set_blocked_domains(  # type: ignore[attr-defined]
                    ["example.test"] if step[1] else []
                )
        for url in URLS:
            self.ask_both(memo, jar, url, False, False)

    def test_changes_to_cookies_and_policy_are_seen(self) -> None:
        jar = http.cookiejar.CookieJar()
        memo = CookieHeaderMemo()
        url = URLS[1]
        for value in ("s=1; Path=/", "t=2; Path=/a", "u=1; Domain=.example.test; Path=/"):
            jar.extract_cookies(_Headers(value), Request(URLS[0]))  # type: ignore[arg-type]
        [cookie] = [c for c in jar if c.name == "s"]

        def check(expected: str | None) -> None:
            for _ in range(2):
                mine = Request(url)
                memo.add_cookie_header(jar, mine)
                theirs = Request(url)
                jar.add_cookie_header(theirs)
                self.assertEqual(mine.get_header("Cookie"), theirs.get_header("Cookie"))
                self.assertEqual(mine.get_header("Cookie"), expected)

        check("t=2; s=1; u=1")
        cookie.value = "9"
        check("t=2; s=9; u=1")
        cookie.secure = True
        check("t=2; u=1")
        cookie.secure = False
        cookie._rest["HttpOnly"] = None  # type: ignore[attr-defined]
        check("t=2; s=9; u=1")
        jar._policy.set_blocked_domains([".example.test"])  # type: ignore[attr-defined]
        check("t=2; s=9")
        jar._policy.set_blocked_domains([])  # type: ignore[attr-defined]
        check("t=2; s=9; u=1")
        jar.clear("example.test", "/", "s")
        check("t=2; u=1")

    def test_a_remembered_answer_skips_the_jar(self) -> None:
        jar = http.cookiejar.CookieJar()
        jar.extract_cookies(_Headers("s=1; Path=/"), Request(URLS[0]))  # type: ignore[arg-type]
        memo = CookieHeaderMemo()
        first = Request(URLS[1])
        memo.add_cookie_header(jar, first)
        self.assertEqual(first.get_header("Cookie"), "s=1")
        asked = []
        self.patch(jar, "_cookies_for_request", lambda r: asked.append(r) or [])
        again = Request(URLS[1])
        memo.add_cookie_header(jar, again)
        self.assertEqual((again.get_header("Cookie"), asked), ("s=1", []))
        # a cookie that expires ends the remembering
        jar.extract_cookies(_Headers("e=1; Max-Age=5; Path=/"), Request(URLS[0]))  # type: ignore[arg-type]
        self.patch(
            jar, "_cookies_for_request", http.cookiejar.CookieJar._cookies_for_request.__get__(jar)
        )
        memo.add_cookie_header(jar, Request(URLS[1]))
        self.now[0] += 10
        late = Request(URLS[1])
        memo.add_cookie_header(jar, late)
        self.assertEqual(late.get_header("Cookie"), "s=1")
        self.assertEqual(len(jar), 1)  # the jar's own clean-up ran

    def test_other_jars_and_big_jars_are_asked_each_time(self) -> None:
        calls: list[object] = []

        class Jar(http.cookiejar.CookieJar):
            def add_cookie_header(self, request: Any) -> None:
                calls.append(request)

        memo = CookieHeaderMemo()
        for _ in range(2):
            memo.add_cookie_header(Jar(), Request(URLS[0]))
        self.assertEqual(len(calls), 2)
        big = http.cookiejar.CookieJar()
        for i in range(MAX_COOKIES + 1):
            big.extract_cookies(_Headers(f"c{i}=1; Path=/"), Request(URLS[0]))  # type: ignore[arg-type]
        asked = []
        real = big._cookies_for_request  # type: ignore[attr-defined]
        self.patch(big, "_cookies_for_request", lambda r: asked.append(r) or real(r))
        for _ in range(2):
            memo.add_cookie_header(big, Request(URLS[0]))
        self.assertEqual(len(asked), 2)


def _contents(jar: http.cookiejar.CookieJar) -> list[tuple[Any, ...]]:
    """Every cookie's place and attributes, in the jar's order."""
    table = jar._cookies  # type: ignore[attr-defined]
    return [
        (d, p, n, vars(c))
        for d, paths in table.items()
        for p, names in paths.items()
        for n, c in names.items()
    ]


SESSION_COOKIES = [
    "s=1; Path=/",
    "s=2; Path=/",
    "t=x; Path=/a",
    "t=x",
    "u=1; Domain=.example.test; Path=/",
    "v=1; Domain=other.test; Path=/",
    "sec=1; Secure; Path=/",
    "h=1; HttpOnly; Path=/",
    "p=1; Port; Path=/",
    "old=1; Version=1; Path=/",
    'q="a b"; Path=/',
    "short=1; Max-Age=5; Path=/",
    "gone=1; Max-Age=0; Path=/",
    "e=1; Expires=Wed, 09 Jun 2021 10:18:14 GMT; Path=/",
    "junk",
]

extract = st.one_of(
    st.tuples(
        st.just("set"),
        st.lists(st.sampled_from(SESSION_COOKIES), min_size=1, max_size=3),
        st.sampled_from(URLS),
        st.booleans(),
        st.integers(min_value=0, max_value=6),
    ),
    st.tuples(st.just("wait"), st.integers(min_value=0, max_value=8)),
    st.tuples(st.just("edit")),
    st.tuples(st.just("clear")),
    st.tuples(st.just("block"), st.booleans()),
)


class SetCookieMemoTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.now = [START]
        self.patch(time, "time", lambda: self.now[0])

    @settings(max_examples=150, deadline=None)
    @given(st.lists(extract, max_size=30), st.sampled_from(["plain", "lwp", "rfc2965"]))
    def test_same_jar_as_the_stdlib(self, actions: list[tuple[Any, ...]], kind: str) -> None:
        self.now[0] = START
        jars: list[http.cookiejar.CookieJar] = []
        for _ in range(2):
            jar = http.cookiejar.LWPCookieJar() if kind == "lwp" else http.cookiejar.CookieJar()
            if kind == "rfc2965":
                jar.set_policy(http.cookiejar.DefaultCookiePolicy(rfc2965=True))
            jars.append(jar)
        mine, theirs = jars
        memo = SetCookieMemo()
        for step in actions:
            if step[0] == "set":
                for pause in (0, step[4]):  # the second time from the memo
                    self.now[0] += pause
                    request = Request(step[2], unverifiable=step[3])
                    memo.extract_cookies(mine, _Headers(*step[1]), request)
                    theirs.extract_cookies(
                        _Headers(*step[1]),  # type: ignore[arg-type]
                        Request(step[2], unverifiable=step[3]),
                    )
                    self.assertEqual(_contents(mine), _contents(theirs))
            elif step[0] == "wait":
                self.now[0] += step[1]
            elif step[0] == "edit":
                for jar in jars:
                    for cookie in jar:
                        cookie.value = (cookie.value or "") + "x"
            elif step[0] == "clear":
                for jar in jars:
                    jar.clear()
            else:
                for jar in jars:
                    jar._policy.set_blocked_domains(  # type: ignore[attr-defined]
                        ["example.test"] if step[1] else []
                    )
        self.assertEqual(_contents(mine), _contents(theirs))

    def test_known_headers_are_not_parsed_again(self) -> None:
        jar = http.cookiejar.CookieJar()
        memo = SetCookieMemo()
        memo.extract_cookies(jar, _Headers("s=1; Path=/"), Request(URLS[1]))
        [first] = list(jar)
        parsed: list[object] = []
        real = jar.make_cookies
        self.patch(jar, "make_cookies", lambda *a: parsed.append(a) or real(*a))
        first.value = "changed"
        memo.extract_cookies(jar, _Headers("s=1; Path=/"), Request(URLS[1]))
        [again] = list(jar)
        self.assertEqual((parsed, again.value), ([], "1"))
        self.assertIsNot(again, first)  # a fresh cookie, as the jar would store
        again._rest["x"] = "y"  # type: ignore[attr-defined]
        memo.extract_cookies(jar, _Headers("s=1; Path=/"), Request(URLS[1]))
        self.assertEqual(next(iter(jar))._rest, {})  # type: ignore[attr-defined]
        # another request, an expiry, a policy change or Set-Cookie2: parsed
        memo.extract_cookies(jar, _Headers("s=1; Path=/"), Request(URLS[0]))
        memo.extract_cookies(jar, _Headers("e=1; Max-Age=9"), Request(URLS[1]))
        memo.extract_cookies(jar, _Headers("e=1; Max-Age=9"), Request(URLS[1]))
        jar.set_policy(http.cookiejar.DefaultCookiePolicy(strict_ns_domain=1))
        memo.extract_cookies(jar, _Headers("s=1; Path=/"), Request(URLS[1]))
        memo.extract_cookies(jar, _Headers("v=1", name="Set-Cookie2"), Request(URLS[1]))
        self.assertEqual(len(parsed), 5)

    def test_other_jars_and_policies_are_asked_each_time(self) -> None:
        calls: list[object] = []

        class Jar(http.cookiejar.CookieJar):
            def extract_cookies(self, response: Any, request: Any) -> None:
                calls.append(request)

        class Policy(http.cookiejar.DefaultCookiePolicy):
            pass

        memo = SetCookieMemo()
        for _ in range(2):
            memo.extract_cookies(Jar(), _Headers("s=1"), Request(URLS[0]))
        jar = http.cookiejar.CookieJar(Policy())
        real = jar.make_cookies
        self.patch(jar, "make_cookies", lambda *a: calls.append(a) or real(*a))
        for _ in range(2):
            memo.extract_cookies(jar, _Headers("s=1"), Request(URLS[0]))
        self.assertEqual(len(calls), 4)
        self.assertEqual([c.name for c in jar], ["s"])
