"""The relay: delivers the spool's entries to their next hop, retries, and reports by DSN.

Routing: every recipient domain is a destination, reached through its MX
hosts in preference order (looked up with a :mod:`twisted.names` resolver,
which is injected; no MX means the domain's own A/AAAA records; a null MX
(RFC 7505) or a non-existent domain fails at once).  With a smarthost, every
recipient goes there.

Unreachable hosts: a next-hop host that cannot be reached (connection
refused or timed out, no proper greeting, TLS failure) is skipped by every
delivery for ``dead_host_time`` seconds (2 minutes, doubling on repeated
failures up to ``max_dead_host_time``, 30 minutes); the destination's other
MX hosts are still tried, and with none left the recipients are deferred at
once (``451 4.4.1``) instead of each waiting for the connect timeout.

Delivery: at most ``per_destination`` connections per destination (and
``max_connections`` in all); a connection carries one message after the
other while its destination has work, then idles for ``idle_timeout``
seconds for reuse.  Each entry's recipients for one destination travel in
one transaction.  STARTTLS is opportunistic by default (``tls="require"``
insists on it, ``verify=True`` checks the certificate and the host name).

State: after every delivery attempt the recipients' state (delivered,
failed, or pending with the next try) is saved durably before the relay
does anything else with that entry.  The one window for a duplicate is a
crash between the next hop's final ``250`` and that save: the message is
sent again after restart (at-least-once; RFC 5321 6.1 prefers a duplicate
to a loss).

Retries: exponential backoff from ``min_backoff`` (5 minutes) doubling up to
``max_backoff`` (4 hours), each delay varied at random by up to ``jitter``
(10 %) either way (``random`` is the injectable source of numbers in
[0, 1)), until ``lifetime`` (5 days) has passed since
arrival; then the recipient fails with ``4.4.7``.  Failures are reported to
the sender in an RFC 3464 bounce (never to the null sender; ``NOTIFY``,
``RET``, ``ENVID`` and ``ORCPT`` honoured); ``NOTIFY=SUCCESS`` gives a
``relayed`` notice when the next hop does not support DSN (if it does, the
parameters are passed on), ``NOTIFY=DELAY`` a delay notice after
``delay_warning`` (4 hours).  A failed message from the null sender (a
double bounce) is reported to ``postmaster`` if one is given, and never
when the recipient that failed is the postmaster (no loops).

``netproto queue flush`` touches ``DIR/flush``; ``delete``/``hold``/``release``
touch ``DIR/rescan``: the relay polls for both every ``poll_interval`` seconds.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from random import Random
from typing import Any, Literal

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from netproto_twisted.core.errors import LocalProtocolError
from netproto_twisted.smtp._relay_route import DeadHosts, Outcome, RouteError, next_hops
from netproto_twisted.smtp._relay_send import Connection, Job, send_job
from netproto_twisted.smtp.bounce import spool_notice, wants
from netproto_twisted.smtp.errors import SMTPAuthenticationError
from netproto_twisted.smtp.queue import (
    DELIVERED,
    FAILED,
    PENDING,
    QueueEntry,
    RecipientState,
    Spool,
)

__all__ = [
    "DEFAULT_DEAD_HOST_TIME",
    "DEFAULT_JITTER",
    "DEFAULT_LIFETIME",
    "DEFAULT_MAX_BACKOFF",
    "DEFAULT_MAX_DEAD_HOST_TIME",
    "DEFAULT_MIN_BACKOFF",
    "TLS_MODES",
    "Relay",
    "RouteError",
]

#: How long a message may stay in the queue before it bounces (RFC 5321 4.5.4.1: 4-5 days).
DEFAULT_LIFETIME = 5 * 86400.0
#: The first retry delay.
DEFAULT_MIN_BACKOFF = 300.0
#: The longest retry delay.
DEFAULT_MAX_BACKOFF = 4 * 3600.0
#: Retry delays vary by up to this fraction either way (+-10 %), so that the
#: messages for a destination that comes back do not all arrive at once.
DEFAULT_JITTER = 0.1
#: How long a next-hop host that could not be reached is skipped (doubling on
#: repeated failures up to DEFAULT_MAX_DEAD_HOST_TIME); 0 turns the cache off.
DEFAULT_DEAD_HOST_TIME = 120.0
#: The longest a next-hop host is skipped.
DEFAULT_MAX_DEAD_HOST_TIME = 1800.0
#: When a delay notice goes out (to recipients with ``NOTIFY=DELAY``).
DEFAULT_DELAY_WARNING = 4 * 3600.0
#: Outbound TLS modes: opportunistic STARTTLS, required STARTTLS (``require`` or
#: ``starttls``), implicit TLS, none; each maps to :func:`connect_smtp`'s ``tls``.
TLS_MODES: dict[str, Literal["starttls", "implicit", "opportunistic", "none"]] = {
    "opportunistic": "opportunistic",
    "require": "starttls",
    "starttls": "starttls",
    "implicit": "implicit",
    "none": "none",
}


_log = Logger(namespace="netproto.smtp.relay")

#: Connection failures that say nothing about the host being reachable.
_NOT_HOST_FAILURES = (SMTPAuthenticationError, LocalProtocolError, ValueError, TypeError)

RouteError.__module__ = __name__  # defined in a private module; this is its public home


def _plausible_address(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(local and at and domain) and all(
        c.isprintable() and not c.isspace() for c in address
    )


@dataclass
class _Destination:
    name: str
    queue: deque[Job] = field(default_factory=deque)
    active: int = 0
    idle: list[tuple[Connection, IDelayedCall]] = field(default_factory=list)


class Relay(Service):
    """Deliver the entries of a :class:`~netproto_twisted.smtp.queue.Spool` to their next hops."""

    def __init__(
        self,
        spool: Spool,
        reactor: IReactorTime,
        *,
        hostname: str,
        resolver: Any = None,
        smarthost: tuple[str, int] | None = None,
        port: int = 25,
        tls: str = "opportunistic",
        verify: bool = False,
        ca_file: str | None = None,
        username: str | None = None,
        password: str | None = None,
        per_destination: int = 5,
        max_connections: int = 100,
        min_backoff: float = DEFAULT_MIN_BACKOFF,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        lifetime: float = DEFAULT_LIFETIME,
        jitter: float = DEFAULT_JITTER,
        random: Callable[[], float] | None = None,
        delay_warning: float = DEFAULT_DELAY_WARNING,
        idle_timeout: float = 5.0,
        timeout: float = 300.0,
        poll_interval: float = 5.0,
        stop_grace: float = 5.0,
        postmaster: str | None = None,
        dead_host_time: float = DEFAULT_DEAD_HOST_TIME,
        max_dead_host_time: float = DEFAULT_MAX_DEAD_HOST_TIME,
        connect: Callable[..., Deferred[Any]] | None = None,
    ) -> None:
        if tls not in TLS_MODES:
            raise ValueError(f"tls must be one of {sorted(TLS_MODES)}, not {tls!r}")
        if per_destination < 1 or max_connections < 1:
            raise ValueError("connection limits must be at least 1")
        if not 0.0 <= jitter < 1.0:
            raise ValueError(f"jitter must be at least 0 and less than 1, not {jitter!r}")
        self.spool = spool
        self.reactor = reactor
        self.hostname = hostname
        self.resolver = resolver
        self.smarthost = smarthost
        self.port = port
        self.tls = tls
        self.verify = verify
        self.ca_file = ca_file
        self.username = username
        self.password = password
        self.per_destination = per_destination
        self.max_connections = max_connections
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.lifetime = lifetime
        self.jitter = jitter
        # Jitter needs no unpredictability, only spread.
        self.random: Callable[[], float] = random or Random().random  # noqa: S311
        self.delay_warning = delay_warning
        self.idle_timeout = idle_timeout
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.stop_grace = stop_grace
        self._connect_fn = connect
        if postmaster is not None and not _plausible_address(postmaster):
            raise ValueError(
                f"postmaster must be an address like postmaster@example.org, not {postmaster!r}"
            )
        self.postmaster = postmaster or None
        """Where double bounces go (None: nowhere, they are only logged)."""
        self.dead_hosts = DeadHosts(
            reactor.seconds, base=dead_host_time, maximum=max_dead_host_time
        )
        """Next-hop hosts skipped for a while after a failed connection."""
        self.entries: dict[str, QueueEntry] = {}
        self._busy: dict[str, int] = {}
        self._scheduled: dict[str, float] = {}
        self._recent: set[str] = set()
        self._heap: list[tuple[float, str]] = []
        self._timer: IDelayedCall | None = None
        self._destinations: dict[str, _Destination] = {}
        self._active_total = 0
        self._workers: set[Deferred[None]] = set()
        self._live: set[Connection] = set()
        self._closing: set[Connection] = set()
        self._poller: LoopingCall | None = None
        self._running = False
        self.ready: Deferred[None] = Deferred()
        """Fires once the spool was read at start-up."""
        self.attempts = 0
        """Delivery attempts made (transactions tried), for tests and statistics."""
        self.connections = 0
        """Connections opened, for tests and statistics."""

    # --- service ------------------------------------------------------------------------

    def startService(self) -> None:
        """Recover the spool, load its entries and start delivering."""
        Service.startService(self)
        self._running = True
        if self.resolver is None and self.smarthost is None:
            from twisted.names.client import Resolver

            self.resolver = Resolver(resolv="/etc/resolv.conf", reactor=self.reactor)
        self.spool.add_listener(self._added)
        d = self.spool.recover().addCallback(lambda _: self.spool.list())
        d.addCallback(self._loaded)
        d.addErrback(lambda f: _log.failure("relay: cannot read the spool", f))
        d.chainDeferred(self.ready)
        if self.poll_interval > 0:
            self._poller = LoopingCall(self._poll)
            self._poller.clock = self.reactor
            self._poller.start(self.poll_interval, now=False).addErrback(
                lambda f: _log.failure("relay: poller stopped", f)
            )

    def stopService(self) -> Deferred[Any]:
        """Stop delivering: close idle connections, abort active ones, wait for their workers."""
        Service.stopService(self)
        self._running = False
        self.spool.remove_listener(self._added)
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._poller is not None and self._poller.running:
            self._poller.stop()
        quits = []
        for dest in self._destinations.values():
            dest.queue.clear()
            for conn, call in dest.idle:
                if call.active():
                    call.cancel()
                quits.append(self._close(conn))
            dest.idle.clear()
        done: Deferred[Any] = DeferredList([*self._workers, *quits], consumeErrors=True)
        if self._live or quits:
            # Transactions in flight get ``stop_grace`` seconds, then their connections go.
            abort = self.reactor.callLater(self.stop_grace, self._abort_live)

            def stopped(result: object) -> object:
                if abort.active():
                    abort.cancel()
                return result

            done.addBoth(stopped)
        return done

    def _abort_live(self) -> None:
        for conn in [*self._live, *self._closing]:
            conn.client.close()

    # --- entries and scheduling -----------------------------------------------------------

    def _loaded(self, entries: list[QueueEntry]) -> None:
        for entry in entries:
            self._track(entry)
        self._kick()

    def _added(self, entry: QueueEntry) -> None:
        if self._running:
            self._track(entry)
            self._kick()

    def _track(self, entry: QueueEntry) -> None:
        if entry.id in self.entries:
            return  # known already (spooled while the spool was being read)
        self.entries[entry.id] = entry
        self._recent.add(entry.id)
        if any(r.status != PENDING and not r.notified for r in entry.recipients) or entry.finished:
            self._start_post(entry)
        else:
            self._schedule(entry)

    def _schedule(self, entry: QueueEntry) -> None:
        pending = entry.pending
        if entry.held or not pending or entry.id in self._busy:
            self._scheduled.pop(entry.id, None)
            return
        when = min(r.next_try for r in pending)
        if self.delay_warning > 0 and entry.mail_from.address:
            for r in pending:
                if not r.delay_notified and wants(r, "DELAY"):
                    when = min(when, entry.received_at + self.delay_warning)
        if self._scheduled.get(entry.id) == when:
            return
        self._scheduled[entry.id] = when
        heapq.heappush(self._heap, (when, entry.id))

    def _kick(self) -> None:
        """Start every due delivery and set the timer for the next one."""
        if not self._running:
            return
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        now = self.reactor.seconds()
        while self._heap and self._heap[0][0] <= now:
            when, entry_id = heapq.heappop(self._heap)
            if self._scheduled.get(entry_id) != when:
                continue  # superseded
            del self._scheduled[entry_id]
            entry = self.entries.get(entry_id)
            if entry is None or entry.held or entry_id in self._busy:
                continue
            self._start(entry, now)
        if self._heap:
            delay = max(0.0, self._heap[0][0] - now)
            self._timer = self.reactor.callLater(delay, self._kick)

    def _start(self, entry: QueueEntry, now: float) -> None:
        due = [r for r in entry.pending if r.next_try <= now]
        if not due:
            if self._needs_delay_notice(entry, now):
                self._start_post(entry)
            else:
                self._schedule(entry)
            return
        groups: dict[str, list[RecipientState]] = {}
        for r in due:
            groups.setdefault(self._destination_of(r), []).append(r)
        self._busy[entry.id] = len(groups)
        for name, recipients in groups.items():
            dest = self._destinations.get(name)
            if dest is None:
                dest = self._destinations[name] = _Destination(name)
            dest.queue.append(Job(entry, recipients))
            self._pump(dest)

    def _destination_of(self, recipient: RecipientState) -> str:
        if self.smarthost is not None:
            return f"[{self.smarthost[0]}]:{self.smarthost[1]}"
        return recipient.domain

    def flush(self) -> None:
        """Make every pending recipient (held entries aside) and every next-hop host due now."""
        self.dead_hosts.clear()
        now = self.reactor.seconds()
        for entry in self.entries.values():
            for r in entry.pending:
                r.next_try = min(r.next_try, now)
            self._schedule(entry)
        self._kick()

    def _poll(self) -> Deferred[Any]:
        directory = self.spool.directory

        def check() -> tuple[bool, bool]:
            return (
                directory.take_trigger(directory.flush_file),
                directory.take_trigger(directory.rescan_file),
            )

        def triggered(flags: tuple[bool, bool]) -> Deferred[Any] | None:
            flush, rescan = flags
            if not (flush or rescan):
                return None
            self._recent.clear()  # entries tracked from now on may be missing from the scan
            return self.spool.list().addCallback(self._merge, flush)

        d: Deferred[Any] = self.spool.run(check)
        return d.addCallback(triggered).addErrback(lambda f: _log.failure("relay: poll", f))

    def _merge(self, entries: list[QueueEntry], flush: bool) -> None:
        """Apply what ``netproto queue`` changed on disk: deletions, holds, releases, new entries.

        The in-memory state of a known entry is never replaced by what the
        scan read (it may predate a save made meanwhile); only the hold flag
        and a release's "due now" are taken over.
        """
        on_disk = {e.id: e for e in entries}
        for entry_id in list(self.entries):
            if entry_id not in on_disk and entry_id not in self._busy:
                if entry_id in self._recent:
                    continue  # spooled during the scan
                del self.entries[entry_id]
                self._scheduled.pop(entry_id, None)
        for entry_id, fresh in on_disk.items():
            known = self.entries.get(entry_id)
            if known is None:
                self._track(fresh)
                continue
            released = known.held and not fresh.held
            known.held = fresh.held
            if released:
                for r in known.pending:
                    r.next_try = 0.0
            if entry_id not in self._busy:
                self._scheduled.pop(entry_id, None)
                self._schedule(known)
        if flush:
            self.flush()
        else:
            self._kick()

    # --- connections ------------------------------------------------------------------------

    def _pump(self, dest: _Destination) -> None:
        while self._running and dest.queue:
            if dest.idle:
                conn, call = dest.idle.pop()
                if call.active():
                    call.cancel()
                self._spawn(dest, conn)
            elif dest.active < self.per_destination and self._active_total < self.max_connections:
                self._spawn(dest, None)
            else:
                break

    def _spawn(self, dest: _Destination, conn: Connection | None) -> None:
        dest.active += 1
        self._active_total += 1
        d = ensureDeferred(self._worker(dest, conn))
        self._workers.add(d)

        def done(_: object) -> None:
            self._workers.discard(d)
            dest.active -= 1
            self._active_total -= 1
            for other in list(self._destinations.values()):
                self._pump(other)
            if not dest.queue and not dest.active and not dest.idle:
                self._destinations.pop(dest.name, None)

        d.addErrback(lambda f: _log.failure("relay: worker for {dest} failed", f, dest=dest.name))
        d.addBoth(done)

    def _close(self, conn: Connection) -> Deferred[None]:
        """QUIT (politely; errors ignored); fires once the connection is closed."""
        self._closing.add(conn)
        try:
            result = conn.client.quit()
        except Exception:
            conn.client.close()
            result = None
        d: Deferred[Any] = result if isinstance(result, Deferred) else succeed(None)

        def closed(_: object) -> None:
            self._closing.discard(conn)

        return d.addBoth(closed)

    def _park(self, dest: _Destination, conn: Connection) -> None:
        def expire() -> None:
            for i, (c, _) in enumerate(dest.idle):
                if c is conn:
                    del dest.idle[i]
                    break
            self._close(conn)
            if not dest.queue and not dest.active and not dest.idle:
                self._destinations.pop(dest.name, None)

        dest.idle.append((conn, self.reactor.callLater(self.idle_timeout, expire)))

    def _tls_options(self, host: str) -> Any:
        if self.tls == "none":
            return None
        from netproto_twisted.core.tls import client_options

        return client_options(host, verify=self.verify, ca_file=self.ca_file)

    async def _connect(self, dest: _Destination) -> Connection:
        hosts = await next_hops(self.resolver, dest.name, smarthost=self.smarthost, port=self.port)
        connect = self._connect_fn
        if connect is None:
            from netproto_twisted.smtp.client import connect_smtp

            connect = connect_smtp
        last = "no host"
        skipped = 0
        for host, port in hosts:
            if self.dead_hosts.until((host, port)) is not None:
                skipped += 1  # failed lately: try the next MX rather than wait for this one
                continue
            try:
                self.connections += 1
                client = await connect(
                    self.reactor,
                    host,
                    port,
                    helo=self.hostname,
                    tls=TLS_MODES[self.tls],
                    tls_options=self._tls_options(host),
                    username=self.username,
                    password=self.password,
                    timeout=self.timeout,
                )
            except Exception as e:
                last = f"{host}: {e}"
                _log.info("relay: cannot connect to {host}: {error}", host=host, error=str(e))
                if not isinstance(e, _NOT_HOST_FAILURES):
                    hold = self.dead_hosts.failed((host, port))
                    _log.info("relay: skipping {host} for {hold:.0f} s", host=host, hold=hold)
                continue
            self.dead_hosts.succeeded((host, port))
            return Connection(client, host, port)
        if skipped:
            last += f"; {skipped} host(s) skipped, unreachable lately"
        raise RouteError(451, "4.4.1", f"no next hop answered for {dest.name} ({last})")

    async def _worker(self, dest: _Destination, conn: Connection | None) -> None:
        if conn is not None:
            self._live.add(conn)
        try:
            while self._running and dest.queue:
                job = dest.queue.popleft()
                if conn is None:
                    try:
                        conn = await self._connect(dest)
                        self._live.add(conn)
                    except RouteError as e:
                        jobs = [job, *dest.queue]
                        dest.queue.clear()
                        for j in jobs:
                            await self._finish(j, {r.address: e.outcome for r in j.recipients}, "")
                        return
                outcomes, broken = await send_job(self.spool, conn, job)
                if outcomes is not None:
                    self.attempts += 1
                if broken:
                    reused = conn.uses > 0
                    self._live.discard(conn)
                    self._close(conn)
                    conn = None
                    if reused and not job.retried and outcomes is not None:
                        job.retried = True  # a reused connection may have timed out meanwhile
                        dest.queue.appendleft(job)
                        continue
                else:
                    conn.uses += 1
                if outcomes is None:
                    job.entry.held = True  # held or deleted meanwhile: a rescan tells which
                    self._job_done(job.entry)
                    continue
                await self._finish(job, outcomes, conn.host if conn is not None else "")
        finally:
            if conn is not None:
                self._live.discard(conn)
                if self._running:
                    self._park(dest, conn)
                else:
                    await self._close(conn)

    # --- outcomes and notices -------------------------------------------------------------------

    def _backoff(self, attempts: int) -> float:
        """The delay before the next try after ``attempts`` tries: doubling, capped, jittered."""
        delay = float(min(self.max_backoff, self.min_backoff * 2 ** max(0, attempts - 1)))
        return delay * (1.0 + self.jitter * (2.0 * self.random() - 1.0))

    async def _finish(self, job: Job, outcomes: dict[str, Outcome], remote: str) -> None:
        """Record one attempt's outcome, save it durably, then release the entry."""
        entry = job.entry
        now = self.reactor.seconds()
        null_sender = not entry.mail_from.address
        dsn_passed = job.dsn_passed
        for r in job.recipients:
            code, enhanced, text = outcomes[r.address]
            r.reply = (code, enhanced, text)
            r.remote = remote
            r.attempts += 1
            if code < 400:
                r.status = DELIVERED
                r.notified = null_sender or dsn_passed or not wants(r, "SUCCESS")
            elif code >= 500 or now >= entry.received_at + self.lifetime:
                r.status = FAILED
                r.notified = not self._reports_failure(entry, r)
            else:
                r.next_try = now + self._backoff(r.attempts)
        try:
            if entry.finished and self._busy.get(entry.id, 1) == 1:
                saved = await self.spool.remove(entry)  # done: removal is the durable state
                self.entries.pop(entry.id, None)
            else:
                saved = await self.spool.save(entry)
        except Exception:
            _log.failure("relay: cannot save the state of {id}", id=entry.id)
            saved = True
        if not saved:
            self.entries.pop(entry.id, None)  # deleted meanwhile
        self._job_done(entry)

    def _reports_failure(self, entry: QueueEntry, r: RecipientState) -> bool:
        """Tell whether a failure of ``r`` gets a notice: to the sender, or to the postmaster.

        A message from the null sender never gets one back; its failure (a
        double bounce) goes to the postmaster if one is configured, unless
        the failed recipient is the postmaster (its own copy failed: never loop).
        """
        if entry.mail_from.address:
            return wants(r, "FAILURE")
        if self.postmaster is None or r.status != FAILED:
            return False
        return r.address.lower() != self.postmaster.lower()

    def _job_done(self, entry: QueueEntry) -> None:
        left = self._busy.get(entry.id, 1) - 1
        if left > 0:
            self._busy[entry.id] = left
            return
        self._busy.pop(entry.id, None)
        if entry.id not in self.entries:
            return
        self._start_post(entry)

    def _needs_delay_notice(self, entry: QueueEntry, now: float) -> bool:
        if not entry.mail_from.address or self.delay_warning <= 0:
            return False
        if now < entry.received_at + self.delay_warning:
            return False
        return any(not r.delay_notified and wants(r, "DELAY") for r in entry.pending)

    def _start_post(self, entry: QueueEntry) -> None:
        self._busy[entry.id] = 1
        d = ensureDeferred(self._post(entry))
        self._workers.add(d)
        d.addErrback(lambda f: _log.failure("relay: notices for {id}", f, id=entry.id))
        d.addBoth(lambda _: self._workers.discard(d))

    async def _post(self, entry: QueueEntry) -> None:
        """Send the notices due for ``entry``, then remove it if finished, or reschedule it."""
        try:
            now = self.reactor.seconds()
            null_sender = not entry.mail_from.address
            if null_sender:  # nothing goes back; failures may go to the postmaster
                for r in entry.recipients:
                    if r.status != PENDING and not self._reports_failure(entry, r):
                        r.notified = True
            groups: list[list[RecipientState]] = [
                [r for r in entry.recipients if r.status == FAILED and not r.notified],
                [r for r in entry.recipients if r.status == DELIVERED and not r.notified],
            ]
            if self._needs_delay_notice(entry, now):
                groups.append(
                    [r for r in entry.pending if not r.delay_notified and wants(r, "DELAY")]
                )
            for group in groups:
                if not group:
                    continue
                try:
                    await spool_notice(
                        self.spool,
                        entry,
                        group,
                        reporting_mta=self.hostname,
                        retry_until=entry.received_at + self.lifetime,
                        now=now,
                        postmaster=self.postmaster if null_sender else None,
                    )
                except Exception:
                    _log.failure("relay: cannot queue a notice for {id}", id=entry.id)
                    if self._running:
                        self.reactor.callLater(self.min_backoff, self._retry_post, entry)
                    return
                for r in group:
                    if r.status == PENDING:
                        r.delay_notified = True
                    else:
                        r.notified = True
                await self.spool.save(entry)
            if entry.finished:
                await self.spool.remove(entry)
                self.entries.pop(entry.id, None)
        finally:
            self._busy.pop(entry.id, None)
        if entry.id in self.entries:
            self._schedule(entry)
            self._kick()

    def _retry_post(self, entry: QueueEntry) -> None:
        if self._running and self.entries.get(entry.id) is entry and entry.id not in self._busy:
            self._start_post(entry)
