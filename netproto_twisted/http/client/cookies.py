"""The Cookie header of a request, from a cookie jar, without redoing the jar's work each time.

:meth:`http.cookiejar.CookieJar.add_cookie_header` checks every cookie
against the request with the policy's rules (a dozen URL parses and regular
expressions per cookie) and then walks the whole jar for expired cookies;
a client fetching from one site asks it the same question over and over.
:class:`CookieHeaderMemo` remembers the headers the jar added for a request
(its URL, host, verifiability and origin, and whether it already carries
Cookie or Cookie2) and replays them while nothing the answer depends on has
changed: cookies in the same places with the same attributes (a cookie set
again to the same value changes nothing), the same policy settings, and no
cookie past its expiry time (so the jar's own clean-up would remove nothing).

:meth:`~http.cookiejar.CookieJar.extract_cookies` parses the Set-Cookie
headers and checks each cookie against the policy; a server that sets the
same cookie on every response has it parsed every time.
:class:`SetCookieMemo` remembers the cookies the jar stored for a set of
headers and a request, and stores fresh copies of them when the same headers
come for the same request under the same policy settings.  Only headers whose
outcome cannot depend on the time are remembered: Set-Cookie without
``Expires`` or ``Max-Age`` (a session cookie), no Set-Cookie2.

Both only do so for the stdlib's jar classes with the stdlib's
:class:`~http.cookiejar.DefaultCookiePolicy` (and the first for at most
:data:`MAX_COOKIES` cookies); anything else is handed to the jar every time.
"""

from __future__ import annotations

import http.cookiejar
import time
from typing import Any

__all__ = ["MAX_COOKIES", "STDLIB_JARS", "CookieHeaderMemo", "SetCookieMemo"]

#: Jar classes whose ``add_cookie_header`` is the stdlib's.
STDLIB_JARS = frozenset(
    {
        http.cookiejar.CookieJar,
        http.cookiejar.FileCookieJar,
        http.cookiejar.MozillaCookieJar,
        http.cookiejar.LWPCookieJar,
    }
)
#: Past this many cookies in the jar the answers are not remembered.
MAX_COOKIES = 32
#: Requests (URL and so on) remembered per jar state.
_MAX_ANSWERS = 256
_FOREVER = float("inf")


def _cookies(jar: Any) -> list[http.cookiejar.Cookie]:
    """Every cookie of a stdlib jar (its ``domain -> path -> name`` table)."""
    return [
        c for paths in jar._cookies.values() for names in paths.values() for c in names.values()
    ]


def _places(jar: Any) -> list[tuple[str, str, str]]:
    """The ``(domain, path, name)`` keys of a stdlib jar's table, in its order."""
    table = jar._cookies
    return [(d, p, n) for d, paths in table.items() for p, names in paths.items() for n in names]


def _request_key(request: Any) -> tuple[Any, ...]:
    """What the policy reads of a request: URL, host (the Host header without one), origin."""
    return (
        request.get_full_url(),
        request.host or request.get_header("Host"),
        request.unverifiable,
        request.origin_req_host,
    )


def _attributes(cookie: http.cookiejar.Cookie) -> dict[str, Any]:
    """A copy of a cookie's attributes (its non-standard ones copied too)."""
    state = dict(vars(cookie))
    rest = state.get("_rest")
    if isinstance(rest, dict):
        state["_rest"] = dict(rest)
    return state


def _policy_settings(policy: Any) -> dict[str, Any]:
    """The policy's settings (not the time it notes during a call)."""
    return {k: v for k, v in vars(policy).items() if k != "_now"}


class CookieHeaderMemo:
    """Add a jar's Cookie header to requests, replaying earlier answers (see the module)."""

    def __init__(self) -> None:
        self._jar: Any = None
        self._places: list[tuple[str, str, str]] = []
        self._attributes: list[dict[str, Any]] = []
        self._policy: dict[str, Any] = {}
        self._expires = _FOREVER
        self._answers: dict[tuple[Any, ...], tuple[tuple[str, str], ...]] = {}

    def add_cookie_header(self, jar: http.cookiejar.CookieJar, request: Any) -> None:
        """What ``jar.add_cookie_header(request)`` does, at the cost of a look-up when known."""
        if type(jar) not in STDLIB_JARS:
            jar.add_cookie_header(request)
            return
        if not jar._cookies:  # type: ignore[attr-defined]
            return  # an empty jar adds nothing and has nothing to expire
        policy = jar._policy  # type: ignore[attr-defined]
        if type(policy) is not http.cookiejar.DefaultCookiePolicy:
            jar.add_cookie_header(request)
            return
        with jar._cookies_lock:  # type: ignore[attr-defined]
            cookies = _cookies(jar)
            if len(cookies) > MAX_COOKIES:
                self._forget()
                jar.add_cookie_header(request)
                return
            now = time.time()
            if not self._still_valid(jar, cookies, policy, now):
                self._forget()
            key = (
                *_request_key(request),
                request.type,
                request.has_header("Cookie"),
                request.has_header("Cookie2"),
            )
            answer = self._answers.get(key)
            if answer is not None:
                # What the jar notes on each call, as it would.
                policy._now = jar._now = int(now)  # type: ignore[attr-defined]
                for name, value in answer:
                    request.add_unredirected_header(name, value)
                return
            before = dict(request.unredirected_hdrs)
            jar.add_cookie_header(request)
            after = request.unredirected_hdrs
            added = tuple((k, v) for k, v in after.items() if before.get(k) != v)
            if len(before) + len(added) != len(after):
                return  # a header went away: not something to replay
            if self._jar is None:
                if _cookies(jar) != cookies:
                    return  # the jar expired some: learn next time
                self._remember(jar, cookies, policy)
            if len(self._answers) >= _MAX_ANSWERS:
                self._answers.clear()
            self._answers[key] = added

    def _still_valid(
        self, jar: Any, cookies: list[http.cookiejar.Cookie], policy: Any, now: float
    ) -> bool:
        if jar is not self._jar or now >= self._expires or _places(jar) != self._places:
            return False
        # Compared by value: a cookie set again with the same attributes (a
        # server repeating its Set-Cookie) gives the same answers.  (The saved
        # ``_rest`` is a copy, compared by value with the live one.)
        if any(vars(c) != saved for c, saved in zip(cookies, self._attributes, strict=True)):
            return False
        return _policy_settings(policy) == self._policy

    def _remember(self, jar: Any, cookies: list[http.cookiejar.Cookie], policy: Any) -> None:
        self._jar = jar
        self._places = _places(jar)
        self._attributes = [_attributes(c) for c in cookies]
        self._policy = _policy_settings(policy)
        expiries = [c.expires for c in cookies if c.expires is not None]
        self._expires = min(expiries) if expiries else _FOREVER
        self._answers.clear()

    def _forget(self) -> None:
        self._jar = None
        self._places = []
        self._attributes = []
        self._answers.clear()


def _timeless(values: list[str]) -> bool:
    """True when no Set-Cookie value carries an expiry (so the time cannot matter)."""
    for value in values:
        lowered = value.lower()
        if "expires" in lowered or "max-age" in lowered:
            return False
    return True


def _fresh(attributes: dict[str, Any]) -> http.cookiejar.Cookie:
    """A new :class:`~http.cookiejar.Cookie` with the given attributes (``_rest`` copied)."""
    cookie = http.cookiejar.Cookie.__new__(http.cookiejar.Cookie)
    vars(cookie).update(attributes)
    cookie._rest = dict(attributes["_rest"])  # type: ignore[attr-defined]
    return cookie


class SetCookieMemo:
    """Store a response's cookies in a jar, replaying the parse of headers seen before."""

    def __init__(self) -> None:
        self._jar: Any = None
        self._policy: dict[str, Any] = {}
        self._answers: dict[tuple[Any, ...], list[dict[str, Any]]] = {}

    def extract_cookies(self, jar: http.cookiejar.CookieJar, response: Any, request: Any) -> None:
        """What ``jar.extract_cookies(response, request)`` does, parsing known headers once."""
        policy = jar._policy  # type: ignore[attr-defined]
        if type(jar) not in STDLIB_JARS or type(policy) is not http.cookiejar.DefaultCookiePolicy:
            jar.extract_cookies(response, request)
            return
        headers = response.info()
        values = headers.get_all("Set-Cookie", [])
        if headers.get_all("Set-Cookie2") or not values or not _timeless(values):
            jar.extract_cookies(response, request)
            return
        with jar._cookies_lock:  # type: ignore[attr-defined]
            settings = _policy_settings(policy)
            if jar is not self._jar or settings != self._policy:
                self._jar, self._policy = jar, settings
                self._answers.clear()
            key = (tuple(values), *_request_key(request))
            answer = self._answers.get(key)
            if answer is not None:
                policy._now = jar._now = int(time.time())  # type: ignore[attr-defined]
                for attributes in answer:
                    jar.set_cookie(_fresh(attributes))
                return
            made = jar.make_cookies(response, request)
            kept = [c for c in made if policy.set_ok(c, request)]
            for cookie in kept:
                jar.set_cookie(cookie)
            if not made:
                return  # nothing parsed (or the parse failed, with a warning): ask again
            if len(self._answers) >= _MAX_ANSWERS:
                self._answers.clear()
            self._answers[key] = [_attributes(c) for c in kept]
