"""robots.txt (RFC 9309): a policy per origin, fetched asynchronously, cached, enforced.

:class:`RobotsCache` fetches ``/robots.txt`` once per origin (concurrent
asks share one fetch), parses it with protego, and keeps the answer for
``ttl`` seconds (RFC 9309 section 2.4 asks for no more than 24 hours).  As
section 2.3.1 says:

* 2xx -- the rules apply (the first 500 KiB are parsed);
* 4xx (404, but 401 and 403 too) -- "unavailable": everything is allowed;
* 5xx, or no answer at all -- "unreachable": everything is disallowed,
  and this answer is kept only ``error_ttl`` seconds.

Redirects are followed by the opener (at least five, as the RFC asks).
:class:`RobotsHandler` makes an opener refuse disallowed URLs with
:class:`~netproto_twisted.http.client.errors.RobotsDisallowed`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from protego import Protego
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from netproto_twisted.http.client.errors import HTTPError, RobotsDisallowed, URLError
from netproto_twisted.http.client.opener import BaseHandler
from netproto_twisted.http.client.request import Request, origin_of
from netproto_twisted.http.client.response import Response

__all__ = [
    "DEFAULT_ROBOTS_TTL",
    "MAX_ROBOTS_SIZE",
    "RobotsCache",
    "RobotsHandler",
    "RobotsPolicy",
    "robots_url",
]

_log = Logger()

#: How long a fetched robots.txt is trusted (RFC 9309 section 2.4: 24 hours at most).
DEFAULT_ROBOTS_TTL = 24 * 3600.0
#: How long an "unreachable" (5xx, network error) answer is kept before asking again.
DEFAULT_ERROR_TTL = 600.0
#: Bytes of robots.txt parsed (RFC 9309 section 2.5: at least 500 KiB).
MAX_ROBOTS_SIZE = 500 * 1024

Fetch = Callable[[str], "Deferred[Response]"]


def robots_url(url: str) -> str:
    """The robots.txt URL governing ``url``."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/robots.txt", "", ""))


@dataclass
class RobotsPolicy:
    """What one origin's robots.txt says; ``rules`` is ``None`` for allow-all or disallow-all."""

    origin: tuple[str, str, int | None]
    allow_all: bool
    rules: Any = None
    status: int | None = None
    expires: float = 0.0
    fetched: float = 0.0
    error: str | None = None
    _text: str = field(default="", repr=False)

    def can_fetch(self, url: str, user_agent: str) -> bool:
        """True when ``user_agent`` may fetch ``url`` (robots.txt itself is always allowed)."""
        if urlsplit(url).path == "/robots.txt":
            return True
        if self.rules is None:
            return self.allow_all
        return bool(self.rules.can_fetch(url, user_agent))

    def crawl_delay(self, user_agent: str) -> float | None:
        """The Crawl-delay for ``user_agent`` (not in RFC 9309, but widely used), or ``None``."""
        if self.rules is None:
            return None
        delay = self.rules.crawl_delay(user_agent)
        return float(delay) if delay is not None else None


class RobotsCache:
    """Fetch and keep robots.txt policies; ``fetch(url)`` (an opener's ``open``) gets them."""

    def __init__(
        self,
        fetch: Fetch,
        reactor: IReactorTime,
        *,
        user_agent: str = "netproto_twisted",
        ttl: float = DEFAULT_ROBOTS_TTL,
        error_ttl: float = DEFAULT_ERROR_TTL,
    ) -> None:
        self.fetch = fetch
        self.reactor = reactor
        self.user_agent = user_agent
        self.ttl = ttl
        self.error_ttl = error_ttl
        self._policies: dict[tuple[str, str, int | None], RobotsPolicy] = {}
        self._pending: dict[tuple[str, str, int | None], list[Deferred[RobotsPolicy]]] = {}

    def policy_for(self, url: str) -> Deferred[RobotsPolicy]:
        """Fire with the policy of ``url``'s origin (fetched when missing or expired)."""
        origin = origin_of(url)
        policy = self._policies.get(origin)
        if policy is not None and policy.expires > self.reactor.seconds():
            return succeed(policy)
        waiter: Deferred[RobotsPolicy] = Deferred()
        waiting = self._pending.get(origin)
        if waiting is not None:
            waiting.append(waiter)
            return waiter
        self._pending[origin] = [waiter]
        ensureDeferred(self._load(origin, robots_url(url)))
        return waiter

    def allowed(self, url: str, user_agent: str | None = None) -> Deferred[bool]:
        """Fire with whether ``url`` may be fetched."""
        agent = user_agent or self.user_agent
        return self.policy_for(url).addCallback(lambda p: p.can_fetch(url, agent))

    def crawl_delay(self, url: str, user_agent: str | None = None) -> Deferred[float | None]:
        """Fire with the Crawl-delay of ``url``'s origin for the user agent."""
        agent = user_agent or self.user_agent
        return self.policy_for(url).addCallback(lambda p: p.crawl_delay(agent))

    def forget(self, url: str | None = None) -> None:
        """Drop the cached policy of ``url``'s origin, or every one."""
        if url is None:
            self._policies.clear()
        else:
            self._policies.pop(origin_of(url), None)

    async def _load(self, origin: tuple[str, str, int | None], url: str) -> None:
        now = self.reactor.seconds()
        policy: RobotsPolicy
        try:
            response = await self.fetch(url)
            body = await _read_head(response, MAX_ROBOTS_SIZE)
        except HTTPError as e:
            if 400 <= e.code < 500:
                policy = RobotsPolicy(origin, True, status=e.code, expires=now + self.ttl)
            else:
                policy = RobotsPolicy(
                    origin, False, status=e.code, expires=now + self.error_ttl, error=str(e)
                )
        except URLError as e:
            _log.info("robots.txt of {url} unreachable: {e}", url=url, e=e)
            policy = RobotsPolicy(origin, False, expires=now + self.error_ttl, error=str(e))
        except Exception as e:  # the rule is "unreachable means disallow": keep to it
            _log.failure("robots.txt of {url}", url=url)
            policy = RobotsPolicy(origin, False, expires=now + self.error_ttl, error=repr(e))
        else:
            text = body[:MAX_ROBOTS_SIZE].decode("utf-8", "replace")
            policy = RobotsPolicy(
                origin,
                True,
                rules=Protego.parse(text),
                status=response.status,
                expires=now + self.ttl,
                _text=text,
            )
        policy.fetched = now
        self._policies[origin] = policy
        for waiter in self._pending.pop(origin, []):
            waiter.callback(policy)


class RobotsHandler(BaseHandler):
    """Refuse, with :class:`RobotsDisallowed`, the URLs robots.txt forbids to ``user_agent``.

    The robots.txt fetches go through the same opener (proxies, TLS,
    redirects apply) and are cached by a :class:`RobotsCache`.  The handler
    sets the ``User-Agent`` header to ``user_agent`` unless the request has one.
    """

    handler_order = 150

    def __init__(
        self,
        user_agent: str = "netproto_twisted",
        *,
        cache: RobotsCache | None = None,
        ttl: float = DEFAULT_ROBOTS_TTL,
    ) -> None:
        self.user_agent = user_agent
        self._cache = cache
        self.ttl = ttl

    @property
    def cache(self) -> RobotsCache:
        """The policy cache (made on first use with the opener's ``open``)."""
        if self._cache is None:
            self._cache = RobotsCache(
                self.parent.open, self.parent.reactor, user_agent=self.user_agent, ttl=self.ttl
            )
        return self._cache

    async def http_request(self, req: Request) -> Request:
        """Check the URL against its origin's policy before it is opened."""
        if not req.has_header("User-agent"):
            req.add_header("User-agent", self.user_agent)
        if urlsplit(req.full_url).path == "/robots.txt":
            return req
        policy = await self.cache.policy_for(req.full_url)
        if not policy.can_fetch(req.full_url, self.user_agent):
            raise RobotsDisallowed(req.full_url, self.user_agent)
        return req

    https_request = http_request


async def _read_head(response: Response, limit: int) -> bytes:
    """The first ``limit`` bytes of the body; the rest is not read."""
    parts: list[bytes] = []
    size = 0

    def keep(data: bytes) -> None:
        nonlocal size
        if size < limit:
            parts.append(data[: limit - size])
        size += len(data)

    try:
        await response.collect(keep, None)
    except URLError:
        if not parts:
            raise
    return b"".join(parts)
