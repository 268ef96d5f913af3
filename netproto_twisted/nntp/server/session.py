"""The base of the NNTP server session: state, ordered replies, article reception, coroutines.

:class:`SessionBase` is what the reader commands
(:mod:`~netproto_twisted.nntp.server.reader`), the posting and feeding
commands (:mod:`~netproto_twisted.nntp.server.feed`) and the session itself
(:mod:`~netproto_twisted.nntp.server.connection`) share:

- **Ordered replies.**  A streaming feed sends many ``TAKETHIS`` without
  waiting; each article is acknowledged only once stored, and the group
  commit stores many at once, so replies are *reserved* in order
  (:meth:`reserve`), filled when the store answers (:meth:`fill`), and sent
  in command order; a reply to a later command waits behind them.
- **Article reception.**  ``POST``, ``IHAVE`` and ``TAKETHIS`` switch the
  framing to raw bytes, decoded by core's dot-unstuffer (strict CRLF,
  line length limit) up to the ``"."`` line; an article over the size
  limit is read to its end but not kept.
- **Coroutines.**  A handler that needs the store is an ``async`` method
  run by :meth:`run`; with the embedded store every read has fired
  already, so it completes at once with no pause of the input.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IConsumer
from twisted.logger import Logger
from twisted.python.failure import Failure

from netproto_twisted.core.connection import ConnectionBase
from netproto_twisted.core.dotstuff import DotUnstuffer
from netproto_twisted.core.errors import RemoteProtocolError
from netproto_twisted.core.framing import LineEndings
from netproto_twisted.core.sasl_exchange import Authenticator
from netproto_twisted.core.streaming import BlockRunner
from netproto_twisted.nntp._wire import Code, status
from netproto_twisted.nntp.interfaces import INewsStore
from netproto_twisted.nntp.server.settings import NNTPSettings

__all__ = ["ArticleHandler", "SessionBase"]

_log = Logger(namespace="netproto.nntp.server")

#: Called with the received article (``None`` when refused) and the refusal text.
ArticleHandler = Callable[[bytes | None, str | None], None]


class SessionBase(ConnectionBase):
    """State and helpers of one NNTP server session (see the module docstring).

    :param settings: the listener's :class:`NNTPSettings`.
    :param store: the article store.
    :param consumer: where long replies (``OVER``) stream (the transport).
    :param runner: runs blocking reads (the thread pool).
    :param now: the clock (UNIX seconds).
    :param peer: the peer's IP address text (``""`` for a unix socket).
    :param peer_is_loopback: whether the peer is on this host.
    :param feed_peer: whether the peer may feed articles without logging in.
    :param secure: whether TLS is on already (implicit TLS).
    :param tls: the server TLS context for STARTTLS, or ``None``.
    :param authenticator: checks AUTHINFO (``None``: no login possible).
    :param moderation: mails posts for moderated groups to their moderator
        (:class:`~netproto_twisted.nntp.server.moderation.Moderation`; ``None``: refused).
    """

    def __init__(
        self,
        settings: NNTPSettings,
        store: INewsStore,
        consumer: IConsumer,
        runner: BlockRunner,
        *,
        now: Callable[[], float],
        peer: str = "",
        peer_is_loopback: bool = False,
        feed_peer: bool = False,
        secure: bool = False,
        tls: object | None = None,
        authenticator: Authenticator | None = None,
        moderation: Any = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.store = store
        self.consumer = consumer
        self.runner = runner
        self.now = now
        self.peer = peer
        self.peer_is_loopback = peer_is_loopback
        self.feed_peer = feed_peer
        self.secure = secure
        self.tls = tls
        self.authenticator = authenticator
        self.moderation = moderation
        self.username: str | None = None
        self.streaming = False
        self.group_name: str | None = None
        self.article_number: int | None = None
        self._slots: deque[list[bytes | None]] = deque()
        self._drain_waiters: list[Deferred[None]] = []
        self._unstuffer: DotUnstuffer | None = None
        self._article: list[bytes] = []
        self._article_size = 0
        self._too_big = False
        self._on_article: ArticleHandler | None = None
        self._errors = 0

    # -- replies, in command order ---------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Send a reply, behind any reply still reserved."""
        if self._slots:
            self._slots.append([data])
        else:
            super().send(data)

    def reply(self, code: int, text: str = "") -> None:
        """Send ``code text``."""
        self.send(status(code, text))

    def reserve(self) -> list[bytes | None]:
        """Reserve the place of a reply that comes later (:meth:`fill`)."""
        slot: list[bytes | None] = [None]
        self._slots.append(slot)
        return slot

    def fill(self, slot: list[bytes | None], data: bytes) -> None:
        """Give a reserved reply its bytes; send what is now complete, in order."""
        slot[0] = data
        slots = self._slots
        while slots and slots[0][0] is not None:
            out = slots.popleft()[0]
            assert out is not None
            ConnectionBase.send(self, out)
        if not slots and self._drain_waiters:
            waiters, self._drain_waiters = self._drain_waiters, []
            for d in waiters:
                d.callback(None)

    @property
    def replies_pending(self) -> int:
        """Replies reserved and not sent yet."""
        return len(self._slots)

    def drained(self) -> Deferred[None]:
        """Fires once every reserved reply has been sent."""
        if not self._slots:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._drain_waiters.append(d)
        return d

    def error(self, code: int, text: str) -> None:
        """Reply to a bad command; after ``max_errors`` of them, close."""
        self._errors += 1
        if self._errors >= self.settings.max_errors:
            self.reply(Code.UNAVAILABLE, "too many errors, closing")
            self.close()
        else:
            self.reply(code, text)

    def write_now(self, data: bytes) -> None:
        """Write ``data`` to the consumer after what is queued (before streaming to it)."""
        queued = self.data_to_send()
        if queued:
            self.consumer.write(queued)
        if data:
            self.consumer.write(data)

    # -- coroutines ------------------------------------------------------------------------

    def run(self, coroutine: Coroutine[Deferred[Any], Any, None]) -> None:
        """Run an ``async`` handler; input waits until it ends (not at all if it ends at once)."""
        self.wait(Deferred.fromCoroutine(coroutine), self._ran)

    def _ran(self, result: object) -> None:
        if isinstance(result, Failure):
            self.handler_failed(result)

    def handler_failed(self, failure: Failure) -> None:
        """A handler failed: ``403`` (the session goes on)."""
        _log.failure("NNTP command failed", failure)
        self.reply(Code.FAULT, "internal fault, try again later")

    # -- article reception -----------------------------------------------------------------

    def receive_article(self, handler: ArticleHandler) -> None:
        """Read a dot-stuffed article next; ``handler(data, None)`` or ``handler(None, why)``."""
        self._unstuffer = DotUnstuffer(
            endings=LineEndings.STRICT, max_line_length=self.settings.max_article_line
        )
        self._article = []
        self._article_size = 0
        self._too_big = False
        self._on_article = handler
        self.expect_raw()

    def raw_received(self, data: bytes) -> None:
        """Article bytes: decode, keep (within the size limit), finish at the ``"."`` line."""
        decoder = self._unstuffer
        assert decoder is not None
        why: str | None = None
        try:
            payload = decoder.feed(data)
        except RemoteProtocolError as e:
            payload, why = b"", f"malformed article: {e}"
        if payload and not self._too_big:
            self._article_size += len(payload)
            if self._article_size > self.settings.max_article_size:
                self._too_big = True
                self._article.clear()
            else:
                self._article.append(payload)
        if not decoder.done:
            return
        self.end_raw(decoder.rest())
        article, self._article = b"".join(self._article), []
        handler, self._on_article = self._on_article, None
        self._unstuffer = None
        if why is None and self._too_big:
            why = f"article larger than {self.settings.max_article_size} bytes"
        assert handler is not None
        handler(None if why else article, why)
