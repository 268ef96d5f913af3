"""The HTTP client's errors, named after :mod:`urllib.error`.

:class:`URLError` is the base of everything an open can fail with (and a
:class:`~netproto_twisted.core.errors.NetprotoError` as well as an
:class:`OSError`, as urllib's is); :class:`HTTPError` is both an error and a
response whose body can still be read; :class:`ContentTooShortError` says the
body ended before its announced length.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netproto_twisted.core.errors import NetprotoError

if TYPE_CHECKING:
    from netproto_twisted.http.client.response import Response

__all__ = [
    "BodyTooLarge",
    "ContentTooShortError",
    "DecompressionBomb",
    "DowngradeRefused",
    "HTTPError",
    "RedirectLoop",
    "RequestTimeout",
    "RobotsDisallowed",
    "URLError",
]


class URLError(NetprotoError, OSError):
    """Opening a URL failed; ``reason`` says why (a string or the underlying exception)."""

    def __init__(self, reason: str | BaseException, filename: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if filename is not None:
            self.filename = filename

    def __str__(self) -> str:
        return f"<urlopen error {self.reason}>"


class RequestTimeout(URLError, TimeoutError):
    """A connect, whole-request or stalled-body timeout expired (``phase`` says which)."""

    def __init__(self, phase: str, seconds: float) -> None:
        super().__init__(f"{phase} timed out after {seconds:g} s")
        self.phase = phase
        self.seconds = seconds


class HTTPError(URLError):
    """A non-success HTTP response; it is also the response (``code``, ``headers``, :meth:`read`).

    :ivar response: the :class:`~netproto_twisted.http.client.response.Response`
        itself, whose body has not been read yet.
    """

    def __init__(self, response: Response, msg: str | None = None) -> None:
        self.response = response
        self.code = response.status
        self.msg = msg if msg is not None else response.reason
        super().__init__(f"HTTP Error {self.code}: {self.msg}")
        self.url = response.url

    def __str__(self) -> str:
        return f"HTTP Error {self.code}: {self.msg}"

    @property
    def status(self) -> int:
        """The status code (urllib's alias of :attr:`code`)."""
        return self.code

    @property
    def reason(self) -> str:
        """The reason phrase (urllib's ``HTTPError.reason``)."""
        return self.msg

    @reason.setter
    def reason(self, value: object) -> None:
        """Ignore URLError's assignment; the phrase comes from ``msg``."""

    @property
    def headers(self) -> object:
        """The response headers (an :class:`http.client.HTTPMessage`)."""
        return self.response.headers

    @property
    def hdrs(self) -> object:
        """urllib's older name of :attr:`headers`."""
        return self.response.headers

    def info(self) -> object:
        """The response headers, as urllib's ``info()``."""
        return self.response.headers

    def geturl(self) -> str:
        """The URL that answered."""
        return self.response.url

    def getcode(self) -> int:
        """The status code."""
        return self.code

    def read(self, max_size: int | None = None) -> object:
        """Read the error body: a Deferred firing with bytes (see :meth:`Response.read`)."""
        return self.response.read(max_size)


class RedirectLoop(HTTPError):
    """Too many redirects, or the same URL visited again and again."""


class DowngradeRefused(URLError):
    """A redirect from https to http, refused unless the opener allows it."""


class ContentTooShortError(URLError):
    """The body ended before the length the server announced (or the connection broke mid-body).

    :ivar content: the bytes received so far when they were collected by
        :meth:`~netproto_twisted.http.client.response.Response.read`, else ``None``.
    """

    def __init__(self, message: str, content: bytes | None = None) -> None:
        super().__init__(message)
        self.content = content


class BodyTooLarge(URLError):
    """A body exceeded the size a caller allowed it (``read(max_size)`` or the opener's limit)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"body larger than {limit} bytes")
        self.limit = limit


class DecompressionBomb(BodyTooLarge):
    """A compressed body decoded to more than the allowed size or ratio."""


class RobotsDisallowed(URLError):
    """robots.txt forbids this URL to our user agent."""

    def __init__(self, url: str, user_agent: str) -> None:
        super().__init__(f"robots.txt disallows {url} for {user_agent!r}")
        self.url = url
        self.user_agent = user_agent
