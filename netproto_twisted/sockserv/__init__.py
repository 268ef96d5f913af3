"""Host ``socketserver`` request handlers under Twisted: threaded, reactor-run, TCP/UDP/unix/TLS.

Blocking handlers (``BaseRequestHandler``, ``StreamRequestHandler``,
``DatagramRequestHandler`` subclasses, unmodified) run in a bounded thread
pool on socket-like adapters with backpressure; handlers whose ``handle`` is
``async def`` run on the reactor with awaitable ``recv``/``sendall``.
"""

from netproto_twisted.sockserv.aio import (
    AsyncReader,
    AsyncSocket,
    AsyncStreamProtocol,
    AsyncWriter,
    IncompleteReadError,
)
from netproto_twisted.sockserv.builtins import (
    BUILTIN_HANDLERS,
    DaytimeHandler,
    DiscardHandler,
    EchoHandler,
    daytime,
)
from netproto_twisted.sockserv.common import HandlerServer
from netproto_twisted.sockserv.handlers import (
    HandlerLoadError,
    is_reactor_handler,
    resolve_handler,
)
from netproto_twisted.sockserv.server import (
    DEFAULT_THREADS,
    HandlerFactory,
    HandlerThreadPool,
    SockservService,
    make_sockserv_service,
)
from netproto_twisted.sockserv.threaded import ThreadedSocket, ThreadedStreamProtocol
from netproto_twisted.sockserv.udp import DatagramSocket, HandlerDatagramProtocol

__all__ = [
    "BUILTIN_HANDLERS",
    "DEFAULT_THREADS",
    "AsyncReader",
    "AsyncSocket",
    "AsyncStreamProtocol",
    "AsyncWriter",
    "DatagramSocket",
    "DaytimeHandler",
    "DiscardHandler",
    "EchoHandler",
    "HandlerDatagramProtocol",
    "HandlerFactory",
    "HandlerLoadError",
    "HandlerServer",
    "HandlerThreadPool",
    "IncompleteReadError",
    "SockservService",
    "ThreadedSocket",
    "ThreadedStreamProtocol",
    "daytime",
    "is_reactor_handler",
    "make_sockserv_service",
    "resolve_handler",
]
