"""Send a file on an established TLS connection from a thread of its own.

The counterpart of :func:`~netproto_twisted.core.sendfile.sendfile_in_thread`
for connections on which ``startTLS`` has finished its handshake (an FTPS
data connection under ``PROT P``).  Twisted's TLS layer encrypts on the
reactor thread, 16 KiB at a time, with a trip through the transport's buffer
for each record; here a thread reads the file into a reused buffer,
encrypts a block at a time with the connection's own pyOpenSSL object (its
memory BIO: the session, keys and sequence numbers stay those of the
connection) and writes the ciphertext to the socket, waiting in ``poll``
when the socket is full.  pyOpenSSL's calls into OpenSSL release the GIL, so
the encryption runs beside the reactor.  At the end the thread sends the
TLS close (``close_notify``), as a server does after a download; the peer's
own close then arrives through the reactor, which reads the connection
again once the thread is done, and Twisted's TLS layer finishes the close.

The connection is taken from the reactor one reactor turn after
:func:`send_tls_in_thread` is called, not at once: a caller is often inside
Twisted's TLS layer (a handshake callback, data being delivered), which goes
on using the TLS object after the caller returns.  From then on the thread
owns the TLS object: the reactor neither reads nor writes the connection
(:func:`~netproto_twisted.core._twisted_compat.take_tls_connection` takes
the ciphertext it had queued, which the thread sends first), and the caller
must not write, close or abort it before :attr:`ThreadedTLSSend.done` has
fired -- that Deferred fires only after the thread has ended (it cannot
be cancelled; :meth:`~netproto_twisted.core.socket_thread.SocketThread.stop`
shuts the socket down, which ends the thread at once, with a failure).  At
most :data:`MAX_THREADS` run at once; :func:`can_send_tls_in_thread` says
when a transport qualifies (and a thread is free).
"""

from __future__ import annotations

import os
import select
from typing import Any

from OpenSSL import SSL

from netproto_twisted.core._twisted_compat import can_take_tls_connection, take_tls_connection
from netproto_twisted.core.socket_thread import FileSendThread

__all__ = [
    "MAX_THREADS",
    "THREAD_MINIMUM",
    "TLS_CHUNK",
    "ThreadedTLSSend",
    "can_send_tls_in_thread",
    "send_tls_in_thread",
]

#: Plaintext bytes read from the file and encrypted per round.
TLS_CHUNK = 256 * 1024
#: Bytes left to send from which the thread pays off (callers decide; FTP uses it).
THREAD_MINIMUM = 1024 * 1024
#: Threaded TLS transfers at once, at most.
MAX_THREADS = 16
#: Seconds a sending thread waits in ``poll`` before looking at its stop flag again.
_POLL_SECONDS = 1.0
#: Ciphertext taken from the memory BIO per read: a round's records and their framing.
_BIO_READ = TLS_CHUNK + TLS_CHUNK // 16 + 4096


#: Sends asked for whose thread starts on the next reactor turn (they count against the limit).
_pending = 0


def can_send_tls_in_thread(transport: object) -> bool:
    """Whether :func:`send_tls_in_thread` may take ``transport`` now."""
    return (
        ThreadedTLSSend.running() + _pending < MAX_THREADS
        and can_take_tls_connection(transport)
    )


class ThreadedTLSSend(FileSendThread):
    """A file being sent by :func:`send_tls_in_thread`.

    :ivar done: fires with the file's bytes sent, after the thread has ended
        (in the reactor thread); fails with the socket's or TLS error.
    :ivar sent: file bytes whose ciphertext the socket took so far (updated
        by the thread; read it any time).
    """

    thread_name = "tls-sendfile"

    def __init__(
        self, reactor: Any, connection: Any, fd: int, offset: int, left: int | None
    ) -> None:
        super().__init__(reactor, connection, fd, offset, left)
        self._tls: SSL.Connection | None = None
        self._queued = b""

    def take_over(self) -> None:
        """Take the connection from the reactor and start the thread (on the reactor thread).

        When the connection no longer qualifies (it closed meanwhile, say) or
        :meth:`stop` was called, the thread starts all the same and fails at
        once, so that :attr:`done` reports it the usual way.
        """
        global _pending
        _pending -= 1
        if not self._stop:
            taken = take_tls_connection(self._connection)
            if taken is not None:
                _, self._tls, self._queued = taken
        self.start()

    def transfer(self) -> None:
        """Encrypt and send until the count or the file's end, then close TLS."""
        sock = self._socket
        assert sock is not None
        tls = self._tls
        if tls is None:
            raise ConnectionAbortedError("the TLS connection was not handed over")
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLOUT)
        self._send(poller, self._queued)
        self._queued = b""
        self._flush(poller)  # a handshake's tail the reactor had not read out of the BIO
        block = bytearray(TLS_CHUNK)
        view = memoryview(block)
        while True:
            if self._stop:
                raise ConnectionAbortedError("TLS send stopped")
            want = self._want(TLS_CHUNK)
            if want == 0:
                break
            n = os.preadv(self._fd, [view[:want]], self._offset)
            if n == 0:
                break
            done = 0
            while done < n:  # into the memory BIO: never waits
                done += tls.send(view[done:n])
            self._flush(poller)
            self._advance(n)
        tls.shutdown()  # close_notify; the peer's answer comes through the reactor
        self._flush(poller)

    def _flush(self, poller: select.poll) -> None:
        """Send what the TLS object produced."""
        tls = self._tls
        assert tls is not None
        while True:
            try:
                data = tls.bio_read(_BIO_READ)
            except SSL.WantReadError:  # the BIO is empty
                return
            self._send(poller, data)

    def _send(self, poller: select.poll, data: bytes) -> None:
        sock = self._socket
        assert sock is not None
        view = memoryview(data)
        while view:
            if self._stop:
                raise ConnectionAbortedError("TLS send stopped")
            try:
                n = sock.send(view)
            except (BlockingIOError, InterruptedError):
                # Room in the socket, an error or a hang-up (the next send says which),
                # or a second to look at the stop flag again.
                poller.poll(_POLL_SECONDS * 1000)
                continue
            view = view[n:]


def send_tls_in_thread(
    reactor: Any,
    transport: object,
    file_descriptor: int,
    offset: int = 0,
    count: int | None = None,
) -> ThreadedTLSSend:
    """Send ``count`` bytes (``None``: to the end) of a file from ``offset``, TLS-encrypted.

    ``transport`` is a TCP connection whose ``startTLS`` handshake is done
    (:func:`can_send_tls_in_thread`); ``reactor`` provides ``callLater``
    (the connection is taken on the next turn) and ``callFromThread``.
    The thread works on duplicates of the file's and the socket's
    descriptors.  See the module docstring for what the caller must leave
    alone until ``done`` fires.

    :raises ValueError: if the transport does not qualify.
    """
    if not can_take_tls_connection(transport):
        raise ValueError("needs a TCP connection with an established, idle TLS layer")
    global _pending
    sender = ThreadedTLSSend(reactor, transport, file_descriptor, offset, count)
    _pending += 1  # until take_over, on the reactor thread as this
    reactor.callLater(0, sender.take_over)
    return sender
