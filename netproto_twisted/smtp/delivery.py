"""Delivery targets (Maildir, capture) and the default recipient policy of the SMTP server.

- :class:`MaildirTarget`: local recipients; one Maildir file linked into
  every distinct local user's ``new/`` (``MaildirStore.deliver_all``),
  durable for all of them or for none before ``commit()`` fires.
- :class:`CaptureTarget`: keeps messages in memory, for tests.
- :class:`DefaultPolicy`: local domains + a users file, relay networks and
  authenticated relay (the server tells it through
  :attr:`SessionInfo.relay_allowed`); never an open relay.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.internet.defer import Deferred, DeferredList, fail, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from netproto_twisted.smtp.errors import CommandError
from netproto_twisted.smtp.interfaces import (
    Envelope,
    IDeliveryTarget,
    IMessageSink,
    IRecipientPolicy,
    IRevocableSink,
    SessionInfo,
)
from netproto_twisted.smtp.wire._address import split_address
from netproto_twisted.smtp.wire._codes import (
    ES_BAD_DEST_MAILBOX,
    ES_DELIVERY_NOT_AUTHORIZED,
    MAILBOX_UNAVAILABLE,
    TRANSACTION_FAILED,
)
from netproto_twisted.smtp.wire._params import MailFrom, RcptTo
from netproto_twisted.smtp.wire._syntax import Reply

_log = Logger(namespace="netproto.smtp")

__all__ = [
    "CaptureTarget",
    "CapturedMessage",
    "DefaultPolicy",
    "FanOutSink",
    "MaildirTarget",
    "commit_all",
    "default_user_of",
]


class _Writer(Protocol):
    def write(self, data: bytes) -> Deferred[None] | None: ...
    def commit(self) -> Deferred[str]: ...
    def abort(self) -> None: ...


class _Store(Protocol):
    def deliver_all(self, users: Sequence[str]) -> _Writer: ...


def commit_all(sinks: Sequence[IMessageSink]) -> Deferred[list[str]]:
    """Commit every sink of one message: all or none, as far as the sinks allow.

    One sink: its commit.  Several (local and relayed recipients): one after
    another, those that can take a commit back (:class:`IRevocableSink`, the
    Maildir) first.  If a later one fails, the earlier ones are revoked and
    the rest aborted, so the client's retry after the ``451`` finds no copy
    to duplicate.  (Of two sinks that cannot revoke, the first may keep its
    copy; that is logged.)  Fires with the sinks' ids.
    """
    if len(sinks) == 1:
        try:
            return sinks[0].commit().addCallback(lambda ident: [ident])
        except Exception:
            return fail()
    ordered = sorted(sinks, key=lambda sink: not IRevocableSink.providedBy(sink))

    async def run() -> list[str]:
        ids: list[str] = []
        for index, sink in enumerate(ordered):
            try:
                ids.append(str(await sink.commit()))
            except BaseException:
                for done in ordered[:index]:
                    await _take_back(done)
                for rest in ordered[index + 1 :]:
                    rest.abort()
                raise
        return ids

    return Deferred.fromCoroutine(run())


async def _take_back(sink: IMessageSink) -> None:
    if not IRevocableSink.providedBy(sink):
        _log.warn("a committed copy stays after a failed transaction: {sink!r}", sink=sink)
        return
    try:
        await sink.revoke()
    except Exception:
        _log.failure("revoking a committed copy failed")


def default_user_of(address: str) -> str:
    """Return the local user an address belongs to: its local part, lower-cased.

    ``<Postmaster>`` (no domain) is the user ``postmaster``.
    """
    local, _ = split_address(address)
    return local.lower()


@implementer(IMessageSink)
class FanOutSink:
    """A sink writing to several writers; commits them all, aborts them all on failure."""

    def __new__(cls, writers: Sequence[_Writer]) -> FanOutSink:
        """Make an :class:`IRevocableSink` when every writer can revoke (the Maildir's can)."""
        if cls is FanOutSink and all(callable(getattr(w, "revoke", None)) for w in writers):
            cls = _RevocableFanOutSink  # a class that says so: no per-instance alsoProvides
        return object.__new__(cls)

    def __init__(self, writers: Sequence[_Writer]) -> None:
        self._writers = list(writers)
        self._finished = False

    def revoke(self) -> Deferred[None]:
        """Take back every writer's committed message (only if all of them can)."""
        revokes: list[Deferred[None]] = [
            maybeDeferred(getattr(writer, "revoke")) for writer in self._writers  # noqa: B009
        ]
        return DeferredList(revokes, fireOnOneErrback=True, consumeErrors=True).addCallback(
            lambda _: None
        )

    def write(self, data: bytes) -> Deferred[None] | None:
        """Write ``data`` to every writer; a Deferred if any of them asks to wait."""
        waits = [w for w in [writer.write(data) for writer in self._writers] if w is not None]
        if not waits:
            return None
        if len(waits) == 1:
            return waits[0]
        return DeferredList(waits, consumeErrors=True).addCallback(lambda _: None)

    def commit(self) -> Deferred[str]:
        """Commit every writer; fire with their ids joined by spaces once all are durable."""
        self._finished = True
        if len(self._writers) == 1:
            return self._writers[0].commit()
        commits: list[Deferred[Any]] = []
        for writer in self._writers:
            try:
                commits.append(writer.commit())
            except Exception:
                commits.append(fail())
        d: Deferred[list[tuple[bool, Any]]] = DeferredList(commits, consumeErrors=True)

        def done(results: list[tuple[bool, Any]]) -> str:
            for ok, value in results:
                if not ok:
                    assert isinstance(value, Failure)
                    value.raiseException()
            return " ".join(str(value) for _, value in results)

        return d.addCallback(done)

    def abort(self) -> None:
        """Abort every writer (idempotent)."""
        for writer in self._writers:
            writer.abort()


@implementer(IRevocableSink)
class _RevocableFanOutSink(FanOutSink):
    """A :class:`FanOutSink` whose writers can all take a committed message back."""


@implementer(IDeliveryTarget)
class MaildirTarget:
    """Deliver to local users' Maildirs: one file for every user, durable before commit fires.

    ``user_of`` maps a recipient address to the store's user name
    (default: :func:`default_user_of`).
    """

    def __init__(self, store: _Store, *, user_of: Callable[[str], str] = default_user_of) -> None:
        self.store = store
        self.user_of = user_of

    def open(self, envelope: Envelope, recipients: Sequence[RcptTo]) -> IMessageSink:
        """Open one Maildir writer for the distinct users among ``recipients`` (all or none)."""
        users = list(dict.fromkeys(self.user_of(r.address) for r in recipients))
        return FanOutSink([self.store.deliver_all(users)])


@dataclass(frozen=True)
class CapturedMessage:
    """A message kept by :class:`CaptureTarget`."""

    envelope: Envelope
    recipients: tuple[RcptTo, ...]
    data: bytes


@implementer(IMessageSink)
class _CaptureSink:
    def __init__(self, target: CaptureTarget, envelope: Envelope, rcpts: Sequence[RcptTo]) -> None:
        self._target = target
        self._envelope = envelope
        self._rcpts = tuple(rcpts)
        self._chunks: list[bytes] = []
        self._done = False

    def write(self, data: bytes) -> None:
        if self._done:
            raise ValueError("sink already committed or aborted")
        self._chunks.append(data)

    def commit(self) -> Deferred[str]:
        if self._done:
            return fail(ValueError("sink already committed or aborted"))
        self._done = True
        if self._target.fail_commits:
            self._target.aborted += 1
            return fail(OSError("capture target told to fail"))
        message = CapturedMessage(self._envelope, self._rcpts, b"".join(self._chunks))
        self._chunks = []
        self._target._add(message)
        return succeed(f"{self._envelope.id}.{len(self._target.messages)}")

    def abort(self) -> None:
        if not self._done:
            self._done = True
            self._chunks = []
            self._target.aborted += 1


@implementer(IDeliveryTarget)
class CaptureTarget:
    """Keep every committed message in memory (for tests); :meth:`wait_for` waits for some.

    :ivar messages: the committed messages, in commit order.
    :ivar aborted: how many sinks were aborted (or failed).
    :ivar fail_commits: set to make every ``commit()`` fail (tests of 451).
    """

    def __init__(self) -> None:
        self.messages: list[CapturedMessage] = []
        self.aborted = 0
        self.opened = 0
        self.fail_commits = False
        self._waiters: list[tuple[int, Deferred[list[CapturedMessage]]]] = []

    def open(self, envelope: Envelope, recipients: Sequence[RcptTo]) -> IMessageSink:
        """Start capturing one message."""
        self.opened += 1
        return _CaptureSink(self, envelope, recipients)

    def _add(self, message: CapturedMessage) -> None:
        self.messages.append(message)
        ready = [(n, d) for n, d in self._waiters if len(self.messages) >= n]
        self._waiters = [(n, d) for n, d in self._waiters if len(self.messages) < n]
        for n, d in ready:
            d.callback(self.messages[:n])

    def wait_for(self, count: int) -> Deferred[list[CapturedMessage]]:
        """Fire with the first ``count`` messages once that many were committed."""
        d: Deferred[list[CapturedMessage]] = Deferred()
        if len(self.messages) >= count:
            d.callback(self.messages[:count])
        else:
            self._waiters.append((count, d))
        return d


def _refuse(code: int, text: str, status: str) -> Deferred[IDeliveryTarget]:
    return fail(CommandError(Reply.make(code, text, status)))


@implementer(IRecipientPolicy)
class DefaultPolicy:
    """Local domains delivered to ``local``, other domains relayed to ``relay`` when allowed.

    - A recipient in one of ``domains`` (or ``<Postmaster>``) is local; its
      user (``user_of``) must satisfy ``user_exists`` (``None``: every user
      exists), else ``550 5.1.1``.  ``postmaster`` is always accepted.
    - Any other recipient is relayed through ``relay`` only when the session
      may relay (authenticated, or in a relay network: the server sets
      :attr:`SessionInfo.relay_allowed`) and ``relay`` is set; otherwise
      ``554 5.7.1 Relay access denied``.
    - Every sender is accepted.

    ``user_exists`` answers are remembered for ``user_cache_seconds`` (1 s;
    0 turns the cache off): a users file is then looked at (stat'ed) at most
    once a second however many recipients arrive, and a user added or removed
    is seen within that time.  ``clock`` gives the seconds (``time.monotonic``).
    """

    #: How many distinct users one cache period remembers at most.
    user_cache_size = 4096

    def __init__(
        self,
        domains: Collection[str],
        local: IDeliveryTarget | None,
        relay: IDeliveryTarget | None = None,
        *,
        user_exists: Callable[[str], bool] | None = None,
        user_of: Callable[[str], str] = default_user_of,
        user_cache_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.domains = frozenset(d.lower().rstrip(".") for d in domains)
        self.local = local
        self.relay = relay
        self.user_exists = user_exists
        self.user_of = user_of
        self.user_cache_seconds = user_cache_seconds
        self._clock = clock
        self._known: dict[str, bool] = {}
        self._known_since = 0.0

    def _user_known(self, user: str, exists: Callable[[str], bool]) -> bool:
        """``exists(user)``, remembered for ``user_cache_seconds``."""
        ttl = self.user_cache_seconds
        if ttl <= 0:
            return exists(user)
        now = self._clock()
        known = self._known
        if not now - ttl < self._known_since <= now:  # expired (or the clock went back)
            known.clear()
            self._known_since = now
        answer = known.get(user)
        if answer is None:
            answer = bool(exists(user))
            if len(known) < self.user_cache_size:
                known[user] = answer
        return answer

    def check_sender(self, session: SessionInfo, mail_from: MailFrom) -> Deferred[None]:
        """Accept every sender."""
        return succeed(None)

    def is_local(self, address: str) -> bool:
        """Return whether ``address`` belongs to a local domain (or is ``<Postmaster>``)."""
        _, domain = split_address(address)
        return not domain or domain.lower().rstrip(".") in self.domains

    def route(
        self, session: SessionInfo, mail_from: MailFrom, rcpt: RcptTo
    ) -> Deferred[IDeliveryTarget]:
        """Return the local target for local users, the relay target for allowed relaying."""
        if self.is_local(rcpt.address):
            if self.local is None:
                return _refuse(MAILBOX_UNAVAILABLE, "No local delivery here", ES_BAD_DEST_MAILBOX)
            user = self.user_of(rcpt.address)
            exists = self.user_exists
            if user != "postmaster" and (
                not user or (exists is not None and not self._user_known(user, exists))
            ):
                return _refuse(
                    MAILBOX_UNAVAILABLE,
                    "Recipient address rejected: User unknown",
                    ES_BAD_DEST_MAILBOX,
                )
            return succeed(self.local)
        if session.relay_allowed and self.relay is not None:
            return succeed(self.relay)
        return _refuse(TRANSACTION_FAILED, "Relay access denied", ES_DELIVERY_NOT_AUTHORIZED)
