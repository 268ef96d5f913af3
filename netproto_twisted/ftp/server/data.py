"""FTP data connections, server side: passive listeners, active connections, transfers.

:class:`DataPorts` opens them for a control connection (RFC 2577 rules:
a passive listener accepts only the control connection's peer; an active
connection goes only to the peer, to a port >= 1024 -- the caller checks
that); :class:`DataChannel` is one data connection on core's plumbing,
with TLS when the session asked for ``PROT P``, and it moves the bytes:

- sending a file on plain TCP in binary mode uses ``os.sendfile``
  (:mod:`netproto_twisted.core.sendfile`): from a thread of its own for
  8 MiB and more, on the reactor thread below that; over TLS in binary mode,
  a file of 1 MiB and more is encrypted and sent by a thread of its own
  once the handshake (and the session-reuse check) is done
  (:mod:`netproto_twisted.core.tls_sendfile`), which also sends the TLS
  close; otherwise (a smaller file, ASCII mode, every thread busy) a
  :class:`~netproto_twisted.core.streaming.StreamProducer` streams it with
  backpressure (CRLF line endings in ASCII mode);
- receiving a plain binary upload into a local file
  (:class:`~netproto_twisted.ftp.interfaces.IFileWriteHandle`) without a
  rate limit takes the socket off the reactor: a thread of its own moves
  the bytes into the file (:mod:`netproto_twisted.core.recvfile`:
  ``os.splice`` where there is one) until the client closes the
  connection; otherwise (TLS, ASCII mode, a rate limit, another backend,
  :data:`~netproto_twisted.core.recvfile.MAX_THREADS` busy) the upload
  goes through the handle's ``write`` in batches, input pausing while too
  much is waiting for the disk.

A session's byte-rate limits (:class:`~netproto_twisted.core.throttle.ByteThrottle`)
apply to both: a limited download leaves sendfile for the producer path
through a :class:`~netproto_twisted.core.throttle.ThrottledConsumer` (blocks
of an eighth of a second's worth), and a limited upload stops reading from
the socket while the bucket is in debt.  A download that makes no progress
for ``stall_timeout`` seconds (the peer stopped reading) fails with 426.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any, BinaryIO

from OpenSSL import SSL
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import ClientFactory, Factory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from netproto_twisted.core.net import canonical_ip
from netproto_twisted.core.oneshot import OneShotPort, listen_once
from netproto_twisted.core.plumbing import ConnectionPlumbing
from netproto_twisted.core.recvfile import (
    FileWriteError,
    ReceiveTooLarge,
    can_receive_in_thread,
    receive_in_thread,
)
from netproto_twisted.core.sendfile import (
    THREAD_MINIMUM,
    can_sendfile,
    can_sendfile_in_thread,
    sendfile_in_thread,
    sendfile_transport,
)
from netproto_twisted.core.streaming import BlockRunner, StreamProducer
from netproto_twisted.core.throttle import ByteThrottle, InputThrottle, ThrottledConsumer
from netproto_twisted.core.tls_sendfile import THREAD_MINIMUM as TLS_THREAD_MINIMUM
from netproto_twisted.core.tls_sendfile import can_send_tls_in_thread, send_tls_in_thread
from netproto_twisted.core.tls_sessions import session_reused
from netproto_twisted.ftp.errors import FileSystemError
from netproto_twisted.ftp.interfaces import IFileWriteHandle, IWriteHandle

__all__ = ["DataChannel", "DataPorts", "PassiveListener", "TransferFailed"]

_log = Logger(namespace="netproto.ftp.data")

#: Bytes read from the file per trip to the thread pool when streaming (TLS, ASCII, a rate
#: limit): each trip costs two thread hand-overs, and on a busy machine each of those waits
#: for a CPU, so fewer, larger reads go faster (64 KiB blocks ran FTPS at a third of 1 MiB's).
STREAM_CHUNK = 1024 * 1024
#: Bytes gathered before one write to the disk.
WRITE_BATCH = 1024 * 1024
#: Bytes waiting for the disk before input pauses.
WRITE_HIGH_WATER = 8 * 1024 * 1024


class TransferFailed(Exception):
    """The data connection failed or closed early; ``code`` is the reply to send."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


class _CRLFToLF:
    """ASCII mode upload: CRLF becomes LF (a CR at a block's end waits for the next block)."""

    def __init__(self) -> None:
        self._cr = False

    def decode(self, data: bytes) -> bytes:
        if self._cr:
            data = b"\r" + data
            self._cr = False
        if data.endswith(b"\r"):
            data = data[:-1]
            self._cr = True
        return data.replace(b"\r\n", b"\n")

    def finish(self) -> bytes:
        return b"\r" if self._cr else b""


class DataChannel(ConnectionPlumbing):
    """One data connection (see the module docstring)."""

    idle_timeout = None
    transfer_timeout = None

    def __init__(
        self, reactor: Any, runner: BlockRunner, tls: Any = None, require_reuse: bool = True
    ) -> None:
        super().__init__()
        self.reactor = reactor
        self._tls = tls
        self._require_reuse = require_reuse
        #: Fires when the TLS handshake is done (and checked); ``None`` without TLS.
        self.tls_ready: Deferred[None] | None = None
        self.clock = reactor
        self.runner = runner
        self.on_connect: Deferred[DataChannel] = Deferred()
        #: Fires with whether the connection closed cleanly.
        self.closed: Deferred[bool] = Deferred()
        self._handshake: Deferred[None] | None = None
        self._receiving: _Receiver | None = None
        self._stream: Deferred[Any] | None = None
        self._moved = 0
        self._live: Callable[[], int] | None = None  # a threaded receive's running count
        self._stop_thread: Callable[[], None] | None = None
        self._tls_thread = False  # a thread owns the TLS layer: no abortConnection until it ends
        #: Whether the last upload was received by a thread (core.recvfile).
        self.threaded = False
        self.aborted = False
        self.tls_on = False
        self._holds: set[str] = set()
        self._input_throttle: InputThrottle | None = None
        self._stall: TransferFailed | None = None
        self._watchdog: Any = None
        self._watched: tuple[float, Callable[[], int], int] | None = None

    # -- connection -------------------------------------------------------------------

    def connectionMade(self) -> None:
        """Connected: tell whoever waits."""
        super().connectionMade()  # sets TCP_NODELAY
        if self._tls is not None:  # at once: a client may send its hello before the command
            self.tls_ready = self.start_tls_server(self._tls, require_reuse=self._require_reuse)
            self.tls_ready.addErrback(self._tls_failed)
        self.on_connect.callback(self)

    def _tls_failed(self, failure: Failure) -> Failure:
        if not self._lost:
            self.transport.abortConnection()
        return failure

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Gone: finish a receive, fail a handshake, tell whoever waits."""
        super().connectionLost(reason)
        self._stop_watchdog()
        if self._input_throttle is not None:
            self._input_throttle.stop()
        handshake, self._handshake = self._handshake, None
        if handshake is not None:
            handshake.errback(TransferFailed(522, "TLS handshake on the data connection failed"))
        receiving, self._receiving = self._receiving, None
        clean = reason.check(ConnectionDone) is not None and not self.aborted
        if receiving is not None:
            receiving.ended(clean)
        self.closed.callback(clean)

    def start_tls_server(self, context: Any, *, require_reuse: bool) -> Deferred[None]:
        """TLS as the server; fires when the handshake is done (and resumed, if required)."""
        self.tls_on = True
        self._require_reuse = require_reuse
        self._handshake = Deferred()
        self.start_tls(context, server=True)
        return self._handshake

    def tls_established(self) -> None:
        """Handshake done: check session reuse."""
        handshake, self._handshake = self._handshake, None
        if handshake is None:
            return
        if self._require_reuse and session_reused(self.transport) is False:
            handshake.errback(
                TransferFailed(522, "data connection must resume the control TLS session")
            )
            return
        handshake.callback(None)

    def timeout_expired(self) -> None:
        """An upload stalled: drop it (the session replies 426)."""
        self.abort()

    @property
    def bytes_transferred(self) -> int:
        """Bytes moved so far on this connection (STAT shows it during a transfer)."""
        live = self._live
        return self._moved + (live() if live is not None else 0)

    def abort(self) -> None:
        """Drop the connection now (ABOR, a failed check)."""
        self.aborted = True
        stop, self._stop_thread = self._stop_thread, None
        if stop is not None:
            stop()  # the receiving thread; its result still arrives, as a failure
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.cancel()
        if self._tls_thread:
            return  # the thread's end aborts the connection (see _send_tls_in_thread)
        if not self._lost and self.transport is not None:
            self.transport.abortConnection()

    def finish(self) -> Deferred[bool]:
        """Close after what was written; fires when the connection is gone."""
        if not self._lost:
            self.transport.loseConnection()
        return self.closed

    # -- sending ----------------------------------------------------------------------

    def send_file(
        self,
        source: BinaryIO,
        *,
        ascii: bool,
        throttle: ByteThrottle | None = None,
        stall_timeout: float | None = None,
    ) -> Deferred[int]:
        """Send ``source`` from its position; fires with the bytes sent.

        ``throttle``: the session's download rate limit; ``stall_timeout``:
        seconds without progress (no byte taken by the socket) before the
        transfer fails with 426.
        """
        moved = [0]

        def progress(count: int) -> None:
            moved[0] += count

        if throttle is None and not ascii and self.tls_on:
            fd = _file_descriptor(source)
            if fd is not None:
                offset = source.tell()
                if os.fstat(fd).st_size - offset >= TLS_THREAD_MINIMUM and can_send_tls_in_thread(
                    self.transport
                ):
                    return self._send_tls_in_thread(fd, offset, stall_timeout)
        if throttle is None and not ascii and not self.tls_on and can_sendfile(self.transport):
            fd, offset = source.fileno(), source.tell()
            if os.fstat(fd).st_size - offset >= THREAD_MINIMUM and can_sendfile_in_thread(
                self.transport
            ):
                sender = sendfile_in_thread(self.reactor, self.transport, fd, offset)
                self._watch(stall_timeout, lambda: sender.sent)
                return self._track(sender.done)
            d = sendfile_transport(self.reactor, self.transport, fd, offset, progress=progress)
        else:
            chunk = STREAM_CHUNK if throttle is None else throttle.block_size(STREAM_CHUNK)
            producer = StreamProducer(source, runner=self.runner, crlf=ascii, chunk_size=chunk)
            consumer: Any = self.transport
            if throttle is not None:
                consumer = ThrottledConsumer(self.transport, throttle)
            d = producer.start(consumer)

            def progress_count() -> int:
                return producer.bytes_written

            self._watch(stall_timeout, progress_count)
            return self._track(d)
        self._watch(stall_timeout, lambda: moved[0])
        return self._track(d)

    def _send_tls_in_thread(
        self, fd: int, offset: int, stall_timeout: float | None
    ) -> Deferred[int]:
        """The download encrypted and sent by a thread of its own (core.tls_sendfile)."""
        sender = send_tls_in_thread(self.reactor, self.transport, fd, offset)
        self._tls_thread = True
        self._stop_thread = sender.stop
        self._live = lambda: sender.sent
        self._watch(stall_timeout, self._live)

        def ended(result: Any) -> Any:
            self._stop_watchdog()
            self._tls_thread = False
            self._stop_thread = None
            self._live = None
            self._moved += sender.sent
            if self.aborted and not self._lost:
                self.transport.abortConnection()  # put off by abort() while the thread ran
            if not isinstance(result, Failure):
                return result
            if self._stall is not None:
                return Failure(self._stall)
            if not result.check(OSError, EOFError, SSL.Error):
                _log.failure("threaded TLS send failed", result)
            return Failure(TransferFailed(426, "data connection closed; transfer aborted"))

        return sender.done.addBoth(ended)

    def _track(self, d: Deferred[int]) -> Deferred[int]:
        self._stream = d
        d.addBoth(self._stream_ended)
        d.addCallback(self._sent)
        return d

    def _stream_ended(self, result: Any) -> Any:
        self._stop_watchdog()
        if isinstance(result, Failure) and self._stall is not None:
            return Failure(self._stall)
        return result

    def _watch(self, timeout: float | None, progress: Callable[[], int]) -> None:
        """Fail the transfer when ``progress()`` stays the same for ``timeout`` seconds."""
        if timeout is None:
            return
        self._watched = (timeout, progress, progress())
        self._watchdog = self.reactor.callLater(timeout, self._check_progress)

    def _check_progress(self) -> None:
        # A method, not a closure that schedules itself: such a closure is a reference
        # cycle holding the channel, left to the garbage collector after every transfer.
        self._watchdog = None
        watched, self._watched = self._watched, None
        if watched is None:
            return
        timeout, progress, last = watched
        now = progress()
        if now != last:
            self._watched = (timeout, progress, now)
            self._watchdog = self.reactor.callLater(timeout, self._check_progress)
            return
        _log.info("data connection made no progress for {t} s; aborting", t=timeout)
        self._stall = TransferFailed(
            426, f"no progress for {timeout:g} s on the data connection; transfer aborted"
        )
        self.abort()

    def _stop_watchdog(self) -> None:
        self._watched = None
        call, self._watchdog = self._watchdog, None
        if call is not None and call.active():
            call.cancel()

    def send_bytes(self, data: bytes) -> Deferred[int]:
        """Send ``data`` (a listing)."""
        if self._lost:
            return succeed(0)
        self.send_raw(data)
        self._moved += len(data)
        return succeed(len(data))

    def _sent(self, count: int) -> int:
        self._stream = None
        self._moved += count
        return count

    # -- receiving --------------------------------------------------------------------

    def receive(
        self,
        handle: IWriteHandle,
        *,
        ascii: bool,
        idle_timeout: float | None = None,
        throttle: ByteThrottle | None = None,
        max_bytes: int | None = None,
    ) -> Deferred[int]:
        """Write everything received to ``handle`` until a clean close; fires with the count.

        ``idle_timeout``: seconds without a byte before the upload is aborted
        (time spent paused, for the disk or the rate, does not count);
        ``throttle``: the session's upload rate limit; ``max_bytes``: the
        largest upload (more fails with 552, and nothing past it is written).
        """
        if (
            throttle is None
            and not ascii
            and not self.tls_on
            and not self._lost
            and IFileWriteHandle.providedBy(handle)
            and can_receive_in_thread(self.transport)
        ):
            return self._receive_in_thread(handle, idle_timeout, max_bytes)
        self.threaded = False
        receiver = _Receiver(self, handle, _CRLFToLF() if ascii else None, max_bytes)
        self._receiving = receiver
        if throttle is not None:
            self._input_throttle = InputThrottle(
                throttle, lambda: self.hold("rate", True), lambda: self.hold("rate", False)
            )
        if idle_timeout is not None and not self._lost:
            self.set_idle_timeout(idle_timeout)
        if self._lost:
            self._receiving = None
            receiver.ended(False)
        return receiver.done

    def _receive_in_thread(
        self, handle: Any, idle_timeout: float | None, max_bytes: int | None
    ) -> Deferred[int]:
        """The upload by a thread of its own (core.recvfile), until the client closes."""
        self.threaded = True
        thread = receive_in_thread(
            self.reactor, self.transport, handle.fileno(), max_bytes=max_bytes
        )
        self._stop_thread = thread.stop
        self._live = lambda: thread.received
        self._watch(idle_timeout, self._live)

        def ended(result: Any) -> Any:
            self._stop_watchdog()
            self._stop_thread = None
            self._live = None
            self._moved += thread.received
            if not isinstance(result, Failure):
                return result
            if self._stall is not None:
                return Failure(self._stall)
            error = result.value
            if isinstance(error, FileWriteError):
                return Failure(FileSystemError.from_os_error(error.error))
            if isinstance(error, ReceiveTooLarge):
                return Failure(_too_large(error.limit))
            if not result.check(OSError, EOFError):
                _log.failure("threaded receive failed", result)
            return Failure(TransferFailed(426, "data connection closed; transfer aborted"))

        return thread.done.addBoth(ended)

    def bytes_received(self, data: bytes) -> None:
        """Upload bytes (anything received while not receiving is dropped)."""
        receiver = self._receiving
        if receiver is not None:
            self._moved += len(data)
            receiver.take(data)
            if self._input_throttle is not None:
                self._input_throttle.received(len(data))

    def hold(self, reason: str, on: bool) -> None:
        """Pause input for ``reason`` (``on``), or drop that reason; reading resumes with none."""
        if on:
            self._holds.add(reason)
            self.pause_input()
        else:
            self._holds.discard(reason)
            if not self._holds:
                self.resume_input()


def _file_descriptor(source: object) -> int | None:
    """The descriptor of a file object from the local disk, else ``None``."""
    fileno = getattr(source, "fileno", None)
    if fileno is None:
        return None
    try:
        fd = fileno()
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return None
    return fd if isinstance(fd, int) else None


def _too_large(limit: int) -> TransferFailed:
    return TransferFailed(552, f"upload larger than {limit} bytes; transfer aborted")


class _Receiver:
    def __init__(
        self,
        channel: DataChannel,
        handle: IWriteHandle,
        decoder: _CRLFToLF | None,
        max_bytes: int | None = None,
    ) -> None:
        self.channel = channel
        self.handle = handle
        self.decoder = decoder
        self.max_bytes = max_bytes
        self.done: Deferred[int] = Deferred()
        self._batch: list[bytes] = []
        self._batched = 0
        self._waiting = 0  # bytes handed to the disk, not written yet
        self._writes: Deferred[None] = succeed(None)
        self._failed: Failure | None = None
        self.count = 0

    def take(self, data: bytes) -> None:
        if self._failed is not None:
            return
        if self.decoder is not None:
            data = self.decoder.decode(data)
        if self.max_bytes is not None and self.count + len(data) > self.max_bytes:
            self._failed = Failure(_too_large(self.max_bytes))
            self.channel.abort()
            return
        self.count += len(data)
        self._batch.append(data)
        self._batched += len(data)
        if self._batched >= WRITE_BATCH:
            self._flush()

    def _flush(self) -> None:
        if not self._batched:
            return
        data = b"".join(self._batch)
        self._batch = []
        self._batched = 0
        self._waiting += len(data)
        if self._waiting > WRITE_HIGH_WATER:
            self.channel.hold("disk", True)
        handle = self.handle

        def write(_: object) -> Deferred[None] | None:
            if self._failed is not None:
                return None
            return handle.write(data)

        def written(result: object) -> None:
            self._waiting -= len(data)
            if isinstance(result, Failure) and self._failed is None:
                self._failed = result
                self.channel.abort()
            if self._waiting <= WRITE_HIGH_WATER // 2:
                self.channel.hold("disk", False)

        self._writes.addCallback(write)
        self._writes.addBoth(written)

    def ended(self, clean: bool) -> None:
        if self.decoder is not None:
            tail = self.decoder.finish()
            if tail:
                self._batch.append(tail)
                self._batched += len(tail)
        self._flush()

        def report(_: object) -> None:
            if self._failed is not None:
                self.done.errback(self._failed)
            elif not clean:
                self.done.errback(TransferFailed(426, "data connection closed; transfer aborted"))
            else:
                self.done.callback(self.count)

        self._writes.addBoth(report)


class _PassiveFactory(Factory):
    """Accepts one data connection, from the control connection's peer only."""

    noisy = False  # no "Starting factory" / "Stopping factory" lines for every transfer

    def __init__(
        self, reactor: Any, runner: BlockRunner, peer: str, tls: Any, require_reuse: bool
    ) -> None:
        self.reactor = reactor
        self.runner = runner
        self.tls = tls
        self.require_reuse = require_reuse
        self.peer = canonical_ip(peer) or peer
        self.accepted: Deferred[DataChannel] = Deferred()
        self.taken = False
        self.refused = 0

    def buildProtocol(self, addr: IAddress) -> DataChannel | None:  # type: ignore[override]
        host = getattr(addr, "host", None)
        if self.taken or host is None or (canonical_ip(host) or host) != self.peer:
            self.refused += 1
            _log.warn("passive data connection from {host} refused", host=host)
            return None
        self.taken = True
        channel = DataChannel(self.reactor, self.runner, self.tls, self.require_reuse)
        channel.factory = self
        channel.on_connect.chainDeferred(self.accepted)
        return channel

    def adoption_failed(self, failure: Failure) -> None:
        """The connection could not be taken (logged by the listener): 425 at once."""
        if not self.accepted.called:
            self.accepted.errback(TransferFailed(425, "cannot open the data connection"))


class PassiveListener:
    """A passive port waiting for the peer's data connection."""

    def __init__(self, port: OneShotPort, factory: _PassiveFactory) -> None:
        self.port_object = port
        self.factory = factory
        self.port: int = getattr(port.getHost(), "port", 0)

    def channel(self) -> Deferred[DataChannel]:
        """Fires with the accepted connection; the listener stops listening then."""
        d = self.factory.accepted

        def stop(channel: DataChannel) -> DataChannel:
            self.close()
            return channel

        return d.addCallback(stop)

    def close(self) -> None:
        """Stop listening."""
        self.port_object.stopListening()


class _ActiveFactory(ClientFactory):
    noisy = False
    def __init__(self, reactor: Any, runner: BlockRunner, tls: Any, require_reuse: bool) -> None:
        self.reactor = reactor
        self.runner = runner
        self.tls = tls
        self.require_reuse = require_reuse
        self.result: Deferred[DataChannel] = Deferred()

    def buildProtocol(self, addr: IAddress) -> DataChannel:  # type: ignore[override]
        channel = DataChannel(self.reactor, self.runner, self.tls, self.require_reuse)
        channel.factory = self
        channel.on_connect.chainDeferred(self.result)
        return channel

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.result.errback(TransferFailed(425, "cannot open the data connection"))


class DataPorts:
    """Opens data connections for control connections (one per server).

    :param reactor: listens and connects (IReactorTCP), and the clock.
    :param runner: blocking reads of files streamed without sendfile.
    :param passive_ports: ``(low, high)``, or ``None`` for any free port.
    """

    def __init__(
        self,
        reactor: Any,
        runner: BlockRunner,
        passive_ports: tuple[int, int] | None = None,
        *,
        choose: Callable[[int, int], int] = random.randint,
    ) -> None:
        self.reactor = reactor
        self.runner = runner
        self.passive_ports = passive_ports
        self._choose = choose

    def passive(
        self, peer: str, local_host: str, *, tls: Any = None, require_reuse: bool = True
    ) -> PassiveListener:
        """Listen on ``local_host`` for ``peer``'s data connection (TLS server if ``tls``).

        :raises OSError: when no port of the range is free.
        """
        factory = _PassiveFactory(self.reactor, self.runner, peer, tls, require_reuse)
        interface = local_host
        if self.passive_ports is None:
            listening = listen_once(self.reactor, 0, factory, interface=interface)
            return PassiveListener(listening, factory)
        low, high = self.passive_ports
        last: Exception | None = None
        for _ in range(min(100, high - low + 1)):
            port = self._choose(low, high)
            try:
                listening = listen_once(self.reactor, port, factory, interface=interface)
            except Exception as e:  # CannotListenError
                last = e
                continue
            return PassiveListener(listening, factory)
        raise OSError(f"no free passive port in {low}-{high}: {last}")

    def active(
        self, host: str, port: int, *, timeout: float, tls: Any = None, require_reuse: bool = True
    ) -> Deferred[DataChannel]:
        """Connect to the peer's ``host``:``port`` (the caller checked both)."""
        factory = _ActiveFactory(self.reactor, self.runner, tls, require_reuse)
        self.reactor.connectTCP(host, port, factory, timeout=timeout)
        return factory.result
