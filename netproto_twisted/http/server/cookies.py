"""Server-side cookies on :mod:`http.cookies`, with safe attributes by default.

:func:`set_cookie_header` builds one ``Set-Cookie`` value (HttpOnly, Secure
and ``SameSite=Lax`` unless told otherwise); :func:`set_cookie` adds it to a
twisted.web request; :func:`read_cookies` parses a ``Cookie`` header into a
plain dict, skipping malformed pairs instead of failing on them.
"""

from __future__ import annotations

from http.cookies import CookieError, SimpleCookie
from typing import Any, Literal

__all__ = ["SameSite", "delete_cookie_header", "read_cookies", "set_cookie", "set_cookie_header"]

#: The SameSite values.
SameSite = Literal["Strict", "Lax", "None"]


def set_cookie_header(
    name: str,
    value: str,
    *,
    max_age: int | None = None,
    expires: str | None = None,
    path: str = "/",
    domain: str | None = None,
    secure: bool = True,
    httponly: bool = True,
    samesite: SameSite | None = "Lax",
) -> str:
    """One ``Set-Cookie`` header value.

    Raises ValueError on a bad name, or on ``SameSite=None`` without Secure.
    """
    if samesite == "None" and not secure:
        raise ValueError("SameSite=None requires Secure")
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie[name] = value
    except CookieError as e:
        raise ValueError(str(e)) from None
    morsel = cookie[name]
    morsel["path"] = path
    if max_age is not None:
        morsel["max-age"] = str(max_age)
    if expires is not None:
        morsel["expires"] = expires
    if domain:
        morsel["domain"] = domain
    if secure:
        morsel["secure"] = True
    if httponly:
        morsel["httponly"] = True
    if samesite is not None:
        morsel["samesite"] = samesite
    return morsel.OutputString()


def delete_cookie_header(name: str, *, path: str = "/", domain: str | None = None) -> str:
    """A ``Set-Cookie`` value that removes the cookie (empty, ``Max-Age=0``)."""
    return set_cookie_header(name, "", max_age=0, path=path, domain=domain, samesite=None)


def set_cookie(request: Any, name: str, value: str, **attributes: Any) -> None:
    """Add a ``Set-Cookie`` header to a twisted.web request (see :func:`set_cookie_header`)."""
    header = set_cookie_header(name, value, **attributes)
    request.responseHeaders.addRawHeader(b"set-cookie", header.encode("latin-1"))


def read_cookies(header: str | bytes | None) -> dict[str, str]:
    """The cookies of a ``Cookie`` header (malformed pairs skipped; the first of a name wins)."""
    if not header:
        return {}
    text = header.decode("latin-1") if isinstance(header, bytes) else header
    found: dict[str, str] = {}
    for item in text.split(";"):
        name, eq, value = item.strip().partition("=")
        if not eq or not name:
            continue
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie.load(f"{name}={value}")
        except CookieError:
            continue
        for key, morsel in cookie.items():
            found.setdefault(key, morsel.value)
    return found
