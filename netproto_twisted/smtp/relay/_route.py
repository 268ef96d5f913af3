"""Next hops for the relay: a destination's MX hosts, which of them answer, which to skip.

:func:`next_hops` turns a destination (a recipient domain, an address
literal, or the smarthost) into the hosts to try, in order; a destination
without a usable next hop raises :class:`RouteError` carrying the reply the
relay records for its recipients.  :func:`connect_first` connects to the
first host that answers, skipping those :class:`DeadHosts` holds down
after a recent failure.  The public home of :class:`RouteError` is
:mod:`netproto_twisted.smtp.relay.service`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from twisted.logger import Logger
from twisted.names import dns
from twisted.names.error import AuthoritativeDomainError, DNSNameError, DomainError

from netproto_twisted.core.errors import LocalProtocolError
from netproto_twisted.smtp.errors import SMTPAuthenticationError

__all__ = ["DeadHosts", "Outcome", "RouteError", "connect_first", "next_hops"]

_log = Logger(namespace="netproto.smtp.relay")

#: Connection failures that say nothing about the host being reachable.
_NOT_HOST_FAILURES = (SMTPAuthenticationError, LocalProtocolError, ValueError, TypeError)

Outcome = tuple[int, str | None, str]
"""``(code, enhanced status or None, text)`` for one recipient."""


class RouteError(Exception):
    """No next hop for a destination; carries the reply to record for its recipients."""

    def __init__(self, code: int, enhanced: str, text: str) -> None:
        super().__init__(f"{code} {enhanced} {text}")
        self.outcome: Outcome = (code, enhanced, text)


async def next_hops(
    resolver: Any, dest: str, *, smarthost: tuple[str, int] | None, port: int
) -> list[tuple[str, int]]:
    """Return the ``(host, port)`` next hops of ``dest`` in preference order; raise RouteError.

    The smarthost if there is one; an address literal (``[192.0.2.7]``,
    ``[IPv6:2001:db8::1]``) as it is; else the domain's MX hosts by
    preference, or the domain itself without MX (RFC 5321 5.1).  A null MX
    (RFC 7505) gives ``556 5.1.10``, a non-existent domain ``550 5.1.2``,
    any other lookup failure ``451 4.4.3``.
    """
    if smarthost is not None:
        return [smarthost]
    if dest.startswith("[") and dest.endswith("]"):
        literal = dest[1:-1]
        if literal.lower().startswith("ipv6:"):
            literal = literal[5:]
        return [(literal, port)]
    if not dest:
        raise RouteError(550, "5.1.3", "recipient address has no domain")
    try:
        answers, _, _ = await resolver.lookupMailExchange(dest)
    except (DNSNameError, AuthoritativeDomainError) as e:
        raise RouteError(550, "5.1.2", f"domain {dest} does not exist ({e})") from None
    except DomainError as e:
        if type(e) is not DomainError:  # SERVFAIL, REFUSED ...: try again later
            raise RouteError(451, "4.4.3", f"MX lookup for {dest} failed: {e}") from None
        raise RouteError(550, "5.1.2", f"domain {dest} does not exist") from None
    except Exception as e:
        raise RouteError(451, "4.4.3", f"MX lookup for {dest} failed: {e}") from None
    mx = sorted(
        (a.payload.preference, str(a.payload.name))
        for a in answers
        if a.type == dns.MX  # (for the domain, or the target of its CNAME)
    )
    if not mx:
        return [(dest, port)]  # RFC 5321 5.1: the domain itself (A/AAAA)
    if len(mx) == 1 and mx[0][1] in ("", "."):
        raise RouteError(556, "5.1.10", f"domain {dest} accepts no mail (null MX)")
    return [(name, port) for _, name in mx if name not in ("", ".")]


async def connect_first(
    dest: str,
    hosts: list[tuple[str, int]],
    dead: DeadHosts,
    connect: Callable[[str, int], Awaitable[Any]],
) -> tuple[Any, str, int]:
    """Connect to the first of ``hosts`` that answers; return ``(client, host, port)``.

    Hosts held down in ``dead`` are skipped; a host that fails to connect
    (other than by refusing our credentials) is held down, one that
    connects is forgotten there.  With no host left, raise
    :class:`RouteError` ``451 4.4.1``.
    """
    last = "no host"
    skipped = 0
    for host, port in hosts:
        if dead.until((host, port)) is not None:
            skipped += 1  # failed lately: try the next MX rather than wait for this one
            continue
        try:
            client = await connect(host, port)
        except Exception as e:
            last = f"{host}: {e}"
            _log.info("relay: cannot connect to {host}: {error}", host=host, error=str(e))
            if not isinstance(e, _NOT_HOST_FAILURES):
                hold = dead.failed((host, port))
                _log.info("relay: skipping {host} for {hold:.0f} s", host=host, hold=hold)
            continue
        dead.succeeded((host, port))
        return client, host, port
    if skipped:
        last += f"; {skipped} host(s) skipped, unreachable lately"
    raise RouteError(451, "4.4.1", f"no next hop answered for {dest} ({last})")


class DeadHosts:
    """Next-hop hosts that could not be reached lately: skipped until their hold-down ends.

    A host that fails (connection refused or timed out, greeting or TLS
    failure) is held down for ``base`` seconds, twice that after each
    further failure that follows the end of a hold-down, up to ``maximum``;
    a success forgets it.  Records of hosts that stay quiet for ``maximum``
    after their hold-down are dropped, so the cache does not grow without bound.
    """

    def __init__(self, clock: Callable[[], float], *, base: float, maximum: float) -> None:
        if base < 0 or maximum < base:
            raise ValueError("need 0 <= base <= maximum for the dead-host hold-down")
        self._clock = clock
        self.base = base
        self.maximum = maximum
        self._hosts: dict[tuple[str, int], tuple[int, float]] = {}
        self._sweep_at = 64

    def __len__(self) -> int:
        return len(self._hosts)

    def until(self, host: tuple[str, int]) -> float | None:
        """Return when the hold-down of ``host`` ends, or None if it is not held down."""
        record = self._hosts.get(host)
        if record is None or record[1] <= self._clock():
            return None
        return record[1]

    def failed(self, host: tuple[str, int]) -> float:
        """Record a failure of ``host``; return the length of its hold-down (0: none)."""
        now = self._clock()
        failures, until = self._hosts.get(host, (0, 0.0))
        if until > now:
            return until - now  # failed again while held down (a connection made before)
        if failures and now > until + self.maximum:
            failures = 0  # quiet for long: start again from the base
        hold = float(min(self.maximum, self.base * 2**failures))
        if hold > 0:
            self._hosts[host] = (failures + 1, now + hold)
            if len(self._hosts) >= self._sweep_at:
                self._sweep(now)
        return hold

    def succeeded(self, host: tuple[str, int]) -> None:
        """Forget the failures of ``host``."""
        self._hosts.pop(host, None)

    def clear(self) -> None:
        """Forget every host (a flush tries everything again)."""
        self._hosts.clear()

    def _sweep(self, now: float) -> None:
        for key, (_, until) in list(self._hosts.items()):
            if now > until + self.maximum:
                del self._hosts[key]
        self._sweep_at = max(64, 2 * len(self._hosts))
