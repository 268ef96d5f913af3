"""The relay: delivers the spool's entries to their next hop, retries, and reports by DSN.

The settings named below (``dead_host_time`` ...) are the fields of
:class:`~netproto_twisted.smtp.relay.settings.RelaySettings`, given to the
:class:`Relay` as one object.

Routing: every recipient domain is a destination, reached through its MX
hosts in preference order (looked up with a :mod:`twisted.names` resolver,
which is injected; no MX means the domain's own A/AAAA records; a null MX
(RFC 7505) or a non-existent domain fails at once).  With a smarthost, every
recipient goes there.

Unreachable hosts: one that failed to connect is skipped for
``dead_host_time`` (2 minutes, doubling up to ``max_dead_host_time``); the
other MX hosts are still tried.

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
(10 %) either way (``random`` is the injectable source), until ``lifetime``
(5 days) has passed since arrival; then the recipient fails with ``4.4.7``.
Failures go back in RFC 3464 bounces (never to the null sender; a failure
of a null-sender message goes to ``postmaster`` if given, never looping).

Memory: the relay keeps only an index (id, due time, hold flag) of the
spool; an entry is read from disk when it is due, at most
``max_active_entries`` at a time, and let go after the attempt.

``netproto queue flush`` touches ``DIR/flush``; ``delete``/``hold``/``release``
touch ``DIR/rescan``: the relay polls for both every ``poll_interval`` seconds.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from random import Random
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from netproto_twisted.core.reactors import IConnectReactor
from netproto_twisted.smtp.relay._index import DueIndex
from netproto_twisted.smtp.relay._notices import Notices
from netproto_twisted.smtp.relay._route import (
    DeadHosts,
    Outcome,
    RouteError,
    connect_first,
    next_hops,
)
from netproto_twisted.smtp.relay._send import Connection, Job, send_job
from netproto_twisted.smtp.relay.queue import (
    DELIVERED,
    FAILED,
    PENDING,
    QueueEntry,
    RecipientState,
    Spool,
)
from netproto_twisted.smtp.relay.settings import TLS_MODES, RelaySettings

__all__ = ["Relay", "RouteError"]

_log = Logger(namespace="netproto.smtp.relay")

#: How many due entries are read from disk in one go (one trip to the thread pool).
_LOAD_BATCH = 64

RouteError.__module__ = __name__  # defined in a private module; this is its public home


@dataclass
class _Destination:
    name: str
    queue: deque[Job] = field(default_factory=deque)
    active: int = 0
    idle: list[tuple[Connection, IDelayedCall]] = field(default_factory=list)


class Relay(Service):
    """Deliver the entries of a :class:`~netproto_twisted.smtp.relay.queue.Spool` to next hops."""

    def __init__(
        self,
        spool: Spool,
        reactor: IConnectReactor,
        settings: RelaySettings,
        *,
        resolver: Any = None,
        random: Callable[[], float] | None = None,
        connect: Callable[..., Deferred[Any]] | None = None,
    ) -> None:
        """Deliver ``spool``'s entries as ``settings`` say.

        ``resolver`` looks up MX and address records (default: a
        :mod:`twisted.names` resolver reading ``/etc/resolv.conf``, made at
        start unless a smarthost is set); ``random`` is the source of retry
        jitter; ``connect`` replaces :func:`~netproto_twisted.smtp.connect_smtp`
        (tests).
        """
        self.spool = spool
        self.reactor = reactor
        self.settings = settings
        """The relay's :class:`~netproto_twisted.smtp.relay.settings.RelaySettings`."""
        self.resolver = resolver
        # Jitter needs no unpredictability, only spread.
        self.random: Callable[[], float] = random or Random().random  # noqa: S311
        self._connect_fn = connect
        self.notices = Notices(
            spool,
            hostname=settings.hostname,
            lifetime=settings.lifetime,
            delay_warning=settings.delay_warning,
            postmaster=settings.postmaster,
        )
        """What is reported to whom; ``notices.postmaster`` gets double bounces (None: nobody)."""
        self.dead_hosts = DeadHosts(
            reactor.seconds, base=settings.dead_host_time, maximum=settings.max_dead_host_time
        )
        """Next-hop hosts skipped for a while after a failed connection."""
        self.index = DueIndex()
        """Every entry the relay knows of, with when it is due (the entries stay on disk)."""
        self._busy: dict[str, int] = {}
        self._recent: set[str] = set()
        self._kicking = False
        self._kick_again = False
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
        """Recover the spool, index its entries and start delivering."""
        Service.startService(self)
        self._running = True
        if self.resolver is None and self.settings.smarthost is None:
            from twisted.names.client import Resolver

            self.resolver = Resolver(resolv="/etc/resolv.conf", reactor=self.reactor)
        self.spool.add_listener(self._added)
        d = self.spool.recover().addCallback(lambda _: self.spool.scan(self._summary))
        d.addCallback(self._loaded)
        d.addErrback(lambda f: _log.failure("relay: cannot read the spool", f))
        d.chainDeferred(self.ready)
        if self.settings.poll_interval > 0:
            self._poller = LoopingCall(self._poll)
            self._poller.clock = self.reactor
            self._poller.start(self.settings.poll_interval, now=False).addErrback(
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
            abort = self.reactor.callLater(self.settings.stop_grace, self._abort_live)

            def stopped(result: object) -> object:
                if abort.active():
                    abort.cancel()
                return result

            done.addBoth(stopped)
        return done

    def _abort_live(self) -> None:
        for conn in [*self._live, *self._closing]:
            conn.client.close()

    def queue_status(self) -> dict[str, int]:
        """Count the entries: ``queued`` (all), ``active``, ``deferred`` (due later), ``held``.

        Read-only, from memory (the admin console shows it); an entry's age
        is on disk (:meth:`Spool.scan <netproto_twisted.smtp.relay.queue.Spool.scan>`).
        """
        now = self.reactor.seconds()
        slots = [s for s in map(self.index.get, self.index) if s is not None]
        return {
            "queued": len(self.index),
            "active": len(self._busy),
            "deferred": sum(1 for s in slots if s.due is not None and s.due > now),
            "held": sum(1 for s in slots if s.held),
        }

    # --- entries and scheduling -----------------------------------------------------------

    def _summary(self, entry: QueueEntry) -> tuple[str, float, bool]:
        """``(id, due, held)``: what the index keeps of an entry (pure: runs in a thread)."""
        return entry.id, self._due_of(entry), entry.held

    def _due_of(self, entry: QueueEntry) -> float:
        """When ``entry`` needs attention next: a retry, a notice, or (0) at once."""
        pending = entry.pending
        if not pending or any(r.status != PENDING and not r.notified for r in entry.recipients):
            return 0.0  # outcomes to report (or nothing left to do)
        when = min(r.next_try for r in pending)
        if self.notices.needs_delay_notice(entry, math.inf):
            when = min(when, entry.received_at + self.settings.delay_warning)
        return when

    def _loaded(self, summaries: list[tuple[str, float, bool]]) -> None:
        for entry_id, due, held in summaries:
            if entry_id not in self.index:
                self.index.add(entry_id, due, held)
        self._kick()

    def _added(self, entry: QueueEntry) -> None:
        """A new entry was committed: start it at once if there is room, else index it."""
        if not self._running or entry.id in self.index:
            return
        if self._poller is not None:
            self._recent.add(entry.id)  # a rescan may be under way: it may miss this one
        due = self._due_of(entry)
        if entry.held or due > self.reactor.seconds() or not self._has_room():
            self.index.add(entry.id, due, entry.held)
            self._kick()
            return
        self.index.add(entry.id, None, False)
        self._busy[entry.id] = 1
        self._dispatch(entry)

    def _has_room(self) -> bool:
        return len(self._busy) < self.settings.max_active_entries

    def _kick(self) -> None:
        """Read and start every due entry (as many as there is room for); set the timer."""
        if not self._running:
            return
        if self._kicking:
            self._kick_again = True  # called back from below: the loop below goes on
            return
        self._kicking = True
        try:
            self._kick_again = True
            while self._kick_again:
                self._kick_again = False
                now = self.reactor.seconds()
                batch: list[str] = []
                while self._has_room():
                    entry_id = self.index.pop_due(now)
                    if entry_id is None:
                        break
                    self._busy[entry_id] = 1
                    batch.append(entry_id)
                    if len(batch) == _LOAD_BATCH:
                        self._load(batch)
                        batch = []
                if batch:
                    self._load(batch)
        finally:
            self._kicking = False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        due = self.index.next_due()
        if due is not None and self._has_room() and self._running:
            self._timer = self.reactor.callLater(
                max(0.0, due - self.reactor.seconds()), self._kick
            )

    def _load(self, ids: list[str]) -> None:
        """Read the entries ``ids`` (marked busy) in one go and dispatch them."""
        d = self.spool.get_many(ids)

        def loaded(entries: list[QueueEntry | None]) -> None:
            for entry_id, entry in zip(ids, entries, strict=True):
                if entry is None:
                    self.index.discard(entry_id)  # delivered, deleted or unreadable meanwhile
                if entry is None or entry_id not in self.index or not self._running:
                    self._busy.pop(entry_id, None)
                    continue
                try:
                    self._dispatch(entry)
                except Exception:
                    _log.failure("relay: dispatching {id}", id=entry_id)

        def failed(f: Any) -> None:
            _log.failure("relay: cannot read entries", f)
            later = self.reactor.seconds() + self.settings.min_backoff
            for entry_id in ids:
                self._busy.pop(entry_id, None)
                self.index.schedule(entry_id, later)

        d.addCallbacks(loaded, failed).addErrback(lambda f: _log.failure("relay: load", f))
        d.addBoth(lambda _: self._kick())

    def _dispatch(self, entry: QueueEntry) -> None:
        """Start the work ``entry`` needs now (it is marked busy): notices, deliveries, or none."""
        now = self.reactor.seconds()
        slot = self.index.get(entry.id)
        if slot is not None and slot.flushed:
            slot.flushed = False
            for r in entry.pending:
                r.next_try = min(r.next_try, now)
        if entry.held:
            self._release(entry)
            return
        if any(r.status != PENDING and not r.notified for r in entry.recipients) or (
            entry.finished
        ):
            self._start_post(entry)
            return
        due = [r for r in entry.pending if r.next_try <= now]
        if not due:
            if self.notices.needs_delay_notice(entry, now):
                self._start_post(entry)
            else:
                self._release(entry)
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

    def _release(self, entry: QueueEntry, due: float | None = None) -> None:
        """The work on ``entry`` is done for now: keep only its index slot, and reschedule it."""
        self._busy.pop(entry.id, None)
        slot = self.index.get(entry.id)
        if slot is None:
            self._kick()
            return
        slot.held = entry.held
        slot.flushed = False  # (a flush during the attempt: the attempt was the flush)
        self.index.schedule(entry.id, self._due_of(entry) if due is None else due)
        self._kick()

    def _destination_of(self, recipient: RecipientState) -> str:
        smarthost = self.settings.smarthost
        if smarthost is not None:
            return f"[{smarthost[0]}]:{smarthost[1]}"
        return recipient.domain

    def flush(self) -> None:
        """Make every pending recipient (held entries aside) and every next-hop host due now."""
        self.dead_hosts.clear()
        self.index.flush(self.reactor.seconds())
        self._kick()

    def _poll(self) -> Deferred[Any]:
        directory = self.spool.directory
        self._recent.clear()  # no scan is under way (the poller waits for the last one)

        def check() -> tuple[bool, bool]:
            return (
                directory.take_trigger(directory.flush_file),
                directory.take_trigger(directory.rescan_file),
            )

        def triggered(flags: tuple[bool, bool]) -> Deferred[Any] | None:
            flush, rescan = flags
            if not (flush or rescan):
                return None
            return self.spool.scan(self._summary).addCallback(self._merge, flush)

        d: Deferred[Any] = self.spool.run(check)
        return d.addCallback(triggered).addErrback(lambda f: _log.failure("relay: poll", f))

    def _merge(self, summaries: list[tuple[str, float, bool]], flush: bool) -> None:
        """Apply what ``netproto queue`` changed on disk (see :meth:`DueIndex.merge`)."""
        self.index.merge(summaries, self.reactor.seconds(), busy=self._busy, recent=self._recent)
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
            elif (
                dest.active < self.settings.per_destination
                and self._active_total < self.settings.max_connections
            ):
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

        dest.idle.append((conn, self.reactor.callLater(self.settings.idle_timeout, expire)))

    def _tls_options(self, host: str) -> Any:
        if self.settings.tls == "none":
            return None
        from netproto_twisted.core.tls import client_options

        return client_options(host, verify=self.settings.verify, ca_file=self.settings.ca_file)

    async def _connect(self, dest: _Destination) -> Connection:
        settings = self.settings
        hosts = await next_hops(
            self.resolver, dest.name, smarthost=settings.smarthost, port=settings.port
        )
        connect = self._connect_fn
        if connect is None:
            from netproto_twisted.smtp.client.session import connect_smtp

            connect = connect_smtp

        def attempt(host: str, port: int) -> Deferred[Any]:
            self.connections += 1
            return connect(
                self.reactor,
                host,
                port,
                helo=settings.hostname,
                tls=TLS_MODES[settings.tls],
                tls_options=self._tls_options(host),
                username=settings.username,
                password=settings.password,
                timeout=settings.timeout,
            )

        client, host, port = await connect_first(dest.name, hosts, self.dead_hosts, attempt)
        return Connection(client, host, port)

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
                self.attempts += 1
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
        s = self.settings
        delay = float(min(s.max_backoff, s.min_backoff * 2 ** max(0, attempts - 1)))
        return delay * (1.0 + s.jitter * (2.0 * self.random() - 1.0))

    async def _finish(self, job: Job, outcomes: dict[str, Outcome], remote: str) -> None:
        """Record one attempt's outcome, save it durably, then release the entry."""
        entry = job.entry
        now = self.reactor.seconds()
        dsn_passed = job.dsn_passed
        for r in job.recipients:
            code, enhanced, text = outcomes[r.address]
            r.reply = (code, enhanced, text)
            r.remote = remote
            r.attempts += 1
            if code < 400:
                r.status = DELIVERED
                r.notified = not self.notices.reports_success(entry, r, dsn_passed)
            elif code >= 500 or now >= entry.received_at + self.settings.lifetime:
                r.status = FAILED
                r.notified = not self.notices.reports_failure(entry, r)
                _log.info(
                    "relay: {id} to <{rcpt}> failed: {code} {text}{note}",
                    id=entry.id,
                    rcpt=r.address,
                    code=code,
                    text=f"{enhanced} {text}" if enhanced else text,
                    note=" (from <>: no notice)"
                    if r.notified and not entry.mail_from.address
                    else "",
                )
            else:
                r.next_try = now + self._backoff(r.attempts)
        try:
            if entry.finished and self._busy.get(entry.id, 1) == 1:
                saved = await self.spool.remove(entry)  # done: removal is the durable state
                self.index.discard(entry.id)
            else:
                saved = await self.spool.save(entry)
        except Exception:
            _log.failure("relay: cannot save the state of {id}", id=entry.id)
            saved = True
        if not saved:
            self.index.discard(entry.id)  # deleted meanwhile
        self._job_done(entry)

    def _job_done(self, entry: QueueEntry) -> None:
        left = self._busy.get(entry.id, 1) - 1
        if left > 0:
            self._busy[entry.id] = left
            return
        if entry.id not in self.index:
            self._busy.pop(entry.id, None)
            self._kick()
            return
        self._start_post(entry)

    def _start_post(self, entry: QueueEntry) -> None:
        self._busy[entry.id] = 1
        d = ensureDeferred(self._post(entry))
        self._workers.add(d)
        d.addErrback(lambda f: _log.failure("relay: notices for {id}", f, id=entry.id))
        d.addBoth(lambda _: self._workers.discard(d))

    async def _post(self, entry: QueueEntry) -> None:
        """Send the notices due for ``entry``, then remove it if finished, or reschedule it."""
        now = self.reactor.seconds()
        retry: float | None = now + self.settings.min_backoff  # when to try again if this fails
        try:
            if await self.notices.send_due(entry, now):
                if entry.finished:
                    await self.spool.remove(entry)
                    self.index.discard(entry.id)
                retry = None
        finally:
            self._release(entry, retry)
