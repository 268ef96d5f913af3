"""The failed-login penalty per address: attempts wait their turn, and the penalty, before a check.

:class:`LoginPenalty` works on keys it gets from :meth:`LoginPenalty.key`
(the text given, here); :class:`~netproto_twisted.core.access.LoginDelay`,
what servers use, keys by address (an IPv6 /64 counts as one address, see
:func:`~netproto_twisted.core.access.host_key`).

A failed login from an address puts the address under a
penalty that doubles with each failure: after *n* failures the address may
not have another password checked until ``min(base * 2 ** (n - 1), maximum)``
seconds after the last failure.  What makes the penalty hold:

* **The wait comes before the check.**  :meth:`LoginPenalty.attempt` runs a
  credential check only once the address's penalty is over, whatever the
  password.  A client that sends a guess and hangs up when no answer came
  within a fraction of a second learns nothing: no answer is ever given
  before the penalty ends, a right one included.
* **One check at a time per address.**  Attempts from one address queue up
  and are checked in turn, each after the penalty its predecessor left, so
  ten parallel connections from a penalised address are answered one penalty
  apart, not all together (Dovecot's ``auth_penalty`` works the same way).
* **A refusal is held until the penalty it caused is over**, so a client
  that retries on the same connection waits once, not twice.
* **Cancellation**: the Deferred from :meth:`LoginPenalty.attempt` is
  cancellable; a waiting attempt whose connection went away leaves the queue
  at once.  A check already running is left to finish (its verdict still
  counts) but its result is dropped.

Memory is bounded: at most *max_hosts* addresses' failures are remembered
(the least recently failing are forgotten first, and an address with no
failure for *forget_after* seconds is forgotten), and at most *max_waiting*
attempts queue per address (more fail at once with :exc:`TooManyWaiting`,
which a protocol answers as a temporary failure).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TypeVar

from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from netproto_twisted.core._twisted_compat import fired_value
from netproto_twisted.core.errors import ConfigError, NetprotoError

__all__ = ["DEFAULT_MAX_WAITING", "LoginPenalty", "TooManyWaiting"]

T = TypeVar("T")

#: The default bound on attempts queued per address (above the default per-IP connections).
DEFAULT_MAX_WAITING = 64


class TooManyWaiting(NetprotoError):
    """Too many login attempts from one address are already waiting their turn."""


class _HostRecord:
    __slots__ = ("failures", "ready_at", "stamp")

    def __init__(self, failures: int, stamp: float) -> None:
        self.failures = failures
        self.stamp = stamp
        self.ready_at = stamp


class _Turn:
    """One queued attempt: what starts its check, and its penalty timer once at the head."""

    __slots__ = ("call", "cancelled", "start")

    def __init__(self, start: Callable[[], None]) -> None:
        self.start = start
        self.call: IDelayedCall | None = None
        self.cancelled = False


class _Queue:
    """The attempts of one address key: the one being checked and those waiting."""

    __slots__ = ("busy", "waiting")

    def __init__(self) -> None:
        self.busy = False
        self.waiting: deque[_Turn] = deque()


def _started() -> None:
    """What a turn's ``start`` becomes once it has started."""


def _is_refusal(failure: Failure) -> bool:
    return failure.check(UnauthorizedLogin) is not None


class LoginPenalty:
    """A failed-login penalty per key that doubles with each failure (see the module).

    A server wraps each credential check in :meth:`attempt` (the SASL
    exchange driver of :mod:`netproto_twisted.core.sasl_exchange` does) and
    disconnects a session once :meth:`should_disconnect` says so.
    :meth:`failed`, :meth:`succeeded` and :meth:`delay` are the lower-level
    pieces, for a protocol that checks passwords without :meth:`attempt`.
    """

    def __init__(
        self,
        clock: IReactorTime,
        *,
        base: float = 1.0,
        maximum: float = 30.0,
        disconnect_after: int = 5,
        forget_after: float = 3600.0,
        max_hosts: int = 100_000,
        max_waiting: int = DEFAULT_MAX_WAITING,
    ) -> None:
        if base < 0 or maximum < 0 or forget_after <= 0:
            raise ConfigError("login_delay", "delays must not be negative")
        if disconnect_after < 1 or max_hosts < 1 or max_waiting < 1:
            raise ConfigError(
                "login_delay", "disconnect_after, max_hosts and max_waiting must be >= 1"
            )
        self.clock = clock
        self.base = base
        self.maximum = maximum
        self.disconnect_after = disconnect_after
        self.forget_after = forget_after
        self.max_hosts = max_hosts
        self.max_waiting = max_waiting
        self._hosts: OrderedDict[str, _HostRecord] = OrderedDict()
        self._queues: dict[str, _Queue] = {}

    def key(self, host: str) -> str:
        """Return the key *host*'s failures and turns are kept under (here: *host* itself)."""
        return host

    def __len__(self) -> int:
        """The number of addresses whose failures are remembered."""
        self._expire()
        return len(self._hosts)

    # -- the failure record ---------------------------------------------------------------

    def _expire(self) -> None:
        cutoff = self.clock.seconds() - self.forget_after
        hosts = self._hosts
        while hosts:
            key, record = next(iter(hosts.items()))
            if record.stamp > cutoff:
                break
            del hosts[key]

    def _record(self, key: str) -> _HostRecord | None:
        self._expire()
        return self._hosts.get(key)

    def failures(self, host: str) -> int:
        """Return the failures remembered for *host*."""
        record = self._record(self.key(host))
        return 0 if record is None else record.failures

    def _delay_for(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        if failures > 64:
            return float(self.maximum)
        return float(min(self.base * 2 ** (failures - 1), self.maximum))

    def failed(self, host: str) -> float:
        """Record a failed login from *host*; return the penalty it starts, in seconds."""
        return self._failed(self.key(host))

    def _failed(self, key: str) -> float:
        self._expire()
        now = self.clock.seconds()
        record = self._hosts.pop(key, None)
        if record is None:
            record = _HostRecord(0, now)
        record.failures += 1
        record.stamp = now
        seconds = self._delay_for(record.failures)
        record.ready_at = now + seconds
        self._hosts[key] = record
        while len(self._hosts) > self.max_hosts:
            self._hosts.popitem(last=False)
        return seconds

    def succeeded(self, host: str) -> None:
        """Forget *host*'s failures after a successful login."""
        self._hosts.pop(self.key(host), None)

    def _remaining(self, key: str) -> float:
        record = self._record(key)
        if record is None:
            return 0.0
        return max(0.0, record.ready_at - self.clock.seconds())

    def current_delay(self, host: str) -> float:
        """Return the seconds until *host*'s penalty is over (0.0 if it has none now)."""
        return self._remaining(self.key(host))

    def delay(self, host: str) -> defer.Deferred[None]:
        """Return a Deferred firing when *host*'s penalty is over; cancellable."""
        return self._sleep(self._remaining(self.key(host)))

    def _sleep(self, seconds: float) -> defer.Deferred[None]:
        if seconds <= 0:
            return defer.succeed(None)
        call: IDelayedCall | None = None

        def cancel(d: defer.Deferred[None]) -> None:
            if call is not None and call.active():
                call.cancel()

        d: defer.Deferred[None] = defer.Deferred(cancel)
        call = self.clock.callLater(seconds, d.callback, None)
        return d

    def should_disconnect(self, session_failures: int) -> bool:
        """Return whether a session with *session_failures* failed logins should be dropped."""
        return session_failures >= self.disconnect_after

    # -- attempts in turn -----------------------------------------------------------------------

    @property
    def busy_addresses(self) -> int:
        """The number of keys with an attempt being checked or waiting (0 when idle)."""
        return len(self._queues)

    def waiting(self, host: str) -> int:
        """Return the attempts from *host* waiting their turn (not counting one being checked)."""
        queue = self._queues.get(self.key(host))
        return 0 if queue is None else sum(1 for t in queue.waiting if not t.cancelled)

    def attempt(
        self,
        host: str,
        check: Callable[[], defer.Deferred[T]],
        *,
        is_refusal: Callable[[Failure], bool] = _is_refusal,
    ) -> defer.Deferred[T]:
        """Run one credential *check* for *host* in its turn, after its penalty; cancellable.

        The Deferred fires with *check*'s result (clearing the address's
        failures), or fails with its failure.  A failure for which
        *is_refusal* is true (by default :exc:`~twisted.cred.error.UnauthorizedLogin`)
        counts against the address and is delivered only when the penalty it
        starts is over; any other failure (a broken store) does not count.
        Fails with :exc:`TooManyWaiting` at once when *max_waiting* attempts
        from the address are queued already.
        """
        key = self.key(host)
        queue = self._queues.get(key)
        if queue is None:
            if self._remaining(key) <= 0:
                # Nothing queued and no penalty: the check runs at once.  The common
                # login (answered from a cache) is done here, without the turn machinery.
                try:
                    checking = check()
                except Exception:
                    checking = defer.fail(Failure())
                done, value = fired_value(checking)
                if done:
                    self._hosts.pop(key, None)
                    return defer.succeed(value)
                running = checking
                check = lambda: running  # noqa: E731 (the turn below takes it over)
            queue = self._queues[key] = _Queue()
        elif len(queue.waiting) >= self.max_waiting:
            self._prune(queue)
            if len(queue.waiting) >= self.max_waiting:
                return defer.fail(TooManyWaiting(f"too many login attempts from {host}"))
        state: dict[str, object] = {"cancelled": False, "running": None}

        def cancel(outer: defer.Deferred[T]) -> None:
            state["cancelled"] = True
            running = state["running"]
            if running is None:
                self._withdraw(key, queue, turn)
            elif isinstance(running, defer.Deferred):
                running.cancel()  # the penalty hold after a refusal

        outer: defer.Deferred[T] = defer.Deferred(cancel)

        def deliver(result: T | Failure) -> None:
            if not state["cancelled"]:
                if isinstance(result, Failure):
                    outer.errback(result)
                else:
                    outer.callback(result)

        def run() -> None:
            turn.call = None
            turn.start = _started  # the turn and this closure no longer hold each other
            state["running"] = True
            try:
                checking = check()
            except Exception:
                checking = defer.fail(Failure())
            checking.addBoth(finished)

        def finished(result: T | Failure) -> None:
            queue.busy = False
            if isinstance(result, Failure) and is_refusal(result):
                hold = self._sleep(self._failed(key))
                self._advance(key, queue)
                if state["cancelled"]:
                    hold.cancel()
                    hold.addErrback(lambda f: None)
                    return
                state["running"] = hold
                hold.addCallbacks(lambda _: deliver(result), lambda f: None)
                return
            if not isinstance(result, Failure):
                self._hosts.pop(key, None)
            self._advance(key, queue)
            deliver(result)

        turn = _Turn(run)
        queue.waiting.append(turn)
        self._advance(key, queue)
        return outer

    def _withdraw(self, key: str, queue: _Queue, turn: _Turn) -> None:
        """Take a cancelled attempt out of its address's queue (or its penalty wait)."""
        turn.cancelled = True
        if turn.call is not None:
            if turn.call.active():
                turn.call.cancel()
            turn.call = None
            queue.busy = False  # it was at the head, serving its penalty: next one's turn
            self._advance(key, queue)

    def _prune(self, queue: _Queue) -> None:
        queue.waiting = deque(t for t in queue.waiting if not t.cancelled)

    def _advance(self, key: str, queue: _Queue) -> None:
        """Start the next waiting attempt of *key* once no check of it is running."""
        if queue.busy:
            return
        while queue.waiting and queue.waiting[0].cancelled:
            queue.waiting.popleft()
        if not queue.waiting:
            self._queues.pop(key, None)
            return
        turn = queue.waiting.popleft()
        queue.busy = True
        seconds = self._remaining(key)
        if seconds <= 0:
            turn.start()
        else:
            turn.call = self.clock.callLater(seconds, turn.start)
