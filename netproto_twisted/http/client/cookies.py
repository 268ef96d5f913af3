"""The Cookie header of a request, from a cookie jar, without redoing the jar's work each time.

:meth:`http.cookiejar.CookieJar.add_cookie_header` checks every cookie
against the request with the policy's rules (a dozen URL parses and regular
expressions per cookie) and then walks the whole jar for expired cookies;
a client fetching from one site asks it the same question over and over.
:class:`CookieHeaderMemo` remembers the headers the jar added for a request
(its URL, host, verifiability and origin, and whether it already carries
Cookie or Cookie2) and replays them while nothing the answer depends on has
changed: the same cookie objects with the same attributes, the same policy
settings, and no cookie past its expiry time (so the jar's own clean-up would
remove nothing).  It only does so for the stdlib's jar classes with the
stdlib's :class:`~http.cookiejar.DefaultCookiePolicy` and at most
:data:`MAX_COOKIES` cookies; anything else is handed to the jar every time.
"""

from __future__ import annotations

import http.cookiejar
import time
from typing import Any

__all__ = ["MAX_COOKIES", "STDLIB_JARS", "CookieHeaderMemo"]

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
        self._cookies: list[http.cookiejar.Cookie] = []
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
                request.get_full_url(),
                request.host,
                request.type,
                request.unverifiable,
                request.origin_req_host,
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
        if jar is not self._jar or now >= self._expires or cookies != self._cookies:
            return False
        # (the saved ``_rest`` is a copy: compared by value with the live one)
        if any(vars(c) != saved for c, saved in zip(cookies, self._attributes, strict=True)):
            return False
        return _policy_settings(policy) == self._policy

    def _remember(self, jar: Any, cookies: list[http.cookiejar.Cookie], policy: Any) -> None:
        self._jar = jar
        self._cookies = cookies
        self._attributes = [_attributes(c) for c in cookies]
        self._policy = _policy_settings(policy)
        expiries = [c.expires for c in cookies if c.expires is not None]
        self._expires = min(expiries) if expiries else _FOREVER
        self._answers.clear()

    def _forget(self) -> None:
        self._jar = None
        self._cookies = []
        self._attributes = []
        self._answers.clear()
