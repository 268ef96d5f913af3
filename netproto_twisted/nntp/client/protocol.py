"""The NNTP client's line plumbing: commands out, replies matched in order, blocks streamed.

:class:`NNTPClientProtocol` sends command lines (pipelined) and matches
each reply to its command.  A multi-line reply's block is read raw,
dot-unstuffed a chunk at a time and handed, as it arrives, to the command's
``sink`` (whole chunks of CRLF-ended lines), so a million OVER lines or a
large article never sit whole in memory unless the caller collects them.
``POST`` and ``IHAVE`` send their article after the ``340``/``335`` go-ahead.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from netproto_twisted.core.client import PendingReply, ReplyQueueProtocol
from netproto_twisted.core.deflate import DEFAULT_MAX_EXPANSION, start_deflate
from netproto_twisted.core.dotstuff import DotUnstuffer
from netproto_twisted.core.errors import LocalProtocolError, RemoteProtocolError
from netproto_twisted.core.framing import LineEndings
from netproto_twisted.core.sasl import SASLError, decode_challenge, encode_response
from netproto_twisted.nntp._wire import Code, parse_status
from netproto_twisted.nntp.errors import (
    NNTPConnectionLost,
    NNTPProtocolError,
    reply_error,
)

__all__ = ["MAX_REPLY_LINE", "NNTPClientProtocol", "Reply"]

#: Longest status line accepted from a server, CRLF excluded.
MAX_REPLY_LINE = 64 * 1024

#: ``(code, text, block)``: block is the bytes of a multi-line reply (``b""`` if streamed
#: to a sink or none).
Reply = tuple[int, str, bytes]


class _Pending(PendingReply):
    __slots__ = ("article", "block", "challenge", "code", "collect", "compress", "sink", "text")

    def __init__(
        self,
        sink: Callable[[bytes], object] | None,
        article: bytes | None,
        challenge: Callable[[bytes], bytes] | None,
        block: bool = False,
    ) -> None:
        super().__init__()
        self.block = block
        self.sink = sink
        self.article = article
        self.challenge = challenge
        self.collect: list[bytes] | None = None
        self.code = 0
        self.text = ""
        self.compress = False


class NNTPClientProtocol(ReplyQueueProtocol[_Pending, tuple[int, str]]):
    """The client side of one NNTP connection (see the module docstring).

    :ivar greeting: fires with ``(code, text)`` of the greeting (200 or 201).
    """

    line_endings = LineEndings.ACCEPT_LF
    max_line_length = MAX_REPLY_LINE
    lost_error = NNTPConnectionLost

    def __init__(self, clock: IReactorTime | None = None, timeout: float | None = 30.0) -> None:
        super().__init__(clock, timeout)
        self._unstuffer: DotUnstuffer | None = None
        self._carry = b""
        #: COMPRESS sent, its reply not read: nothing else may be sent (RFC 8054).
        self._compress_waiting = False
        self._max_expansion = DEFAULT_MAX_EXPANSION

    # -- commands -------------------------------------------------------------------------

    def command(
        self,
        line: str | bytes,
        *,
        sink: Callable[[bytes], object] | None = None,
        article: bytes | None = None,
        challenge: Callable[[bytes], bytes] | None = None,
        group_block: bool = False,
    ) -> Deferred[Reply]:
        """Send a command and fire with its :data:`Reply` (an error reply fails it).

        ``sink(chunk)`` receives a multi-line block as it comes (whole CRLF
        lines per call); without one the block is collected.  ``article`` is
        sent dot-stuffed after a ``335``/``340`` go-ahead (POST, IHAVE), and the
        Deferred fires with the reply after it.  ``challenge(data) -> response``
        answers ``383`` SASL challenges.  ``group_block``: a ``211`` reply has a
        block (LISTGROUP; GROUP's 211 has none).
        """
        if self._compress_waiting:
            raise LocalProtocolError("wait for the reply to COMPRESS before sending more")
        d: Deferred[Reply] = self.enqueue(_Pending(sink, article, challenge, group_block))
        data = line.encode("utf-8") if isinstance(line, str) else line
        self.send_raw(data + b"\r\n")
        return d

    def compress(self, max_expansion: int = DEFAULT_MAX_EXPANSION) -> Deferred[Reply]:
        """Send ``COMPRESS DEFLATE``; on ``206`` compress both ways from the next byte (RFC 8054).

        Nothing may be in flight, and nothing is sent until the reply has come.
        ``max_expansion``: the most bytes one received chunk may inflate to.
        """
        if self.pending:
            raise LocalProtocolError("COMPRESS needs every earlier reply read first")
        pending = _Pending(None, None, None)
        pending.compress = True
        d: Deferred[Reply] = self.enqueue(pending)
        self._compress_waiting = True
        self._max_expansion = max_expansion
        self.send_raw(b"COMPRESS DEFLATE\r\n")
        return d

    def send_data(self, data: bytes) -> None:
        """Write bytes as they are (an article already dot-stuffed after TAKETHIS)."""
        self.send_raw(data)

    def expect(self) -> Deferred[Reply]:
        """A reply for something already sent by :meth:`send_data` (TAKETHIS with its article)."""
        return self.enqueue(_Pending(None, None, None))

    # -- replies --------------------------------------------------------------------------

    def line_received(self, line: bytes) -> None:
        """A status line."""
        try:
            code, text = parse_status(line)
        except ValueError as e:
            self.protocol_error(NNTPProtocolError(str(e)))
            return
        if not self.greeted:
            if code in (Code.READY_POSTING, Code.READY_NO_POSTING):
                self.greet((code, text))
            else:
                self.refuse_greeting(reply_error(code, text))
            return
        pending = self.next_pending()
        if pending is None:
            self.protocol_error(NNTPProtocolError(f"unexpected line: {line[:80]!r}"))
            return
        if code == Code.SASL_CHALLENGE and pending.challenge is not None:
            self._answer(pending, text)
            return
        if code in (Code.SEND_POST, Code.SEND_IHAVE) and pending.article is not None:
            article, pending.article = pending.article, None
            self.send_raw(article)
            return
        if code not in Code.MULTILINE or (code == Code.GROUP and not pending.block):
            self.pop_pending()
            if pending.compress:
                self._compress_waiting = False
                if code == Code.COMPRESS_ACTIVE:
                    # What follows this line, already received or not, is compressed.
                    start_deflate(self, max_expansion=self._max_expansion)
            if code >= 400:
                pending.deferred.errback(reply_error(code, text))
            else:
                pending.deferred.callback((code, text, b""))
            return
        pending.code, pending.text = code, text
        if pending.sink is None:
            pending.collect = []
        self._unstuffer = DotUnstuffer(endings=LineEndings.ACCEPT_LF)
        self._carry = b""
        self.set_raw_mode()

    def _answer(self, pending: _Pending, text: str) -> None:
        assert pending.challenge is not None
        try:
            response = pending.challenge(decode_challenge(text.encode("ascii")))
        except SASLError as e:
            self.send_raw(b"*\r\n")  # cancel; the 481 that follows fails nothing more
            self.pop_pending()
            pending.deferred.errback(e)
            eat = _Pending(None, None, None)
            eat.deferred.addErrback(lambda _: None)
            self.push_front(eat)
            return
        self.send_raw(encode_response(response) + b"\r\n")

    def raw_data_received(self, data: bytes) -> None:
        """Part of a block: unstuffed, cut at whole lines, given to the sink or collected."""
        unstuffer = self._unstuffer
        pending = self.next_pending()
        if unstuffer is None or pending is None:  # pragma: no cover - raw only in a block
            return
        try:
            payload = unstuffer.feed(data)
        except RemoteProtocolError as e:
            self.protocol_error(NNTPProtocolError(str(e)))
            return
        if payload:
            if pending.sink is not None:
                if self._carry:
                    payload = self._carry + payload
                cut = payload.rfind(b"\n") + 1
                self._carry = payload[cut:]
                if cut:
                    pending.sink(payload[:cut])
            else:
                assert pending.collect is not None
                pending.collect.append(payload)
        if unstuffer.done:
            self._unstuffer = None
            self.pop_pending()
            if self._carry and pending.sink is not None:  # pragma: no cover - lines end in CRLF
                pending.sink(self._carry)
            self._carry = b""
            block = b"".join(pending.collect) if pending.collect is not None else b""
            try:
                pending.deferred.callback((pending.code, pending.text, block))
            finally:
                self.set_line_mode(unstuffer.rest())

    def line_too_long(self) -> None:
        """A reply line over :data:`MAX_REPLY_LINE`."""
        self.protocol_error(NNTPProtocolError("reply line too long"))

    def bad_line_ending(self, line: bytes) -> None:
        """A bare CR in a reply line: tolerated."""
        self.line_received(line.replace(b"\r", b""))
