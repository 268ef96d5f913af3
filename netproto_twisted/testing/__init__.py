"""Helpers for users' trial suites: servers in memory, or in-process on ephemeral loopback ports.

In memory (no socket, no real time; :mod:`netproto_twisted.testing.memory`):
:func:`connected_pair` and :class:`MemoryEndpoint` join a client and a
server through :mod:`twisted.test.iosim` on a ``MemoryReactorClock``;
:func:`memory_smtp_capture` is the SMTP capture server reached that way;
:class:`StubOpener` answers an HTTP opener's requests from a twisted.web
resource (:mod:`netproto_twisted.testing.http_client`).

On loopback, every helper takes the reactor explicitly (in trial: ``from
twisted.internet import reactor`` in the test module), starts the server on ``127.0.0.1`` with
port 0, and returns a :class:`RunningServer` whose :meth:`~RunningServer.stop`
closes the ports, the connections and the thread pools, so that trial finds
a clean reactor after the test::

    from twisted.internet import reactor
    from twisted.trial.unittest import TestCase
    from netproto_twisted.testing import serve_handler

    class MyHandlerTests(TestCase):
        async def test_upper(self):
            server = await serve_handler(reactor, "myapp.handlers:UpperHandler")
            self.addCleanup(server.stop)
            ...  # connect to server.host, server.port
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from twisted.application.service import IService
from twisted.internet import defer

from netproto_twisted.core.daemon import Listening
from netproto_twisted.core.reactors import IServerReactor

if TYPE_CHECKING:
    from netproto_twisted.testing.ftp import FTPTestServer, start_ftp_server
    from netproto_twisted.testing.http_client import StubNotSettled, StubOpener
    from netproto_twisted.testing.http_server import ServedSite, serve_http
    from netproto_twisted.testing.mail import MailServers, start_mail_servers
    from netproto_twisted.testing.memory import (
        MemoryEndpoint,
        NotSettled,
        Pair,
        connected_pair,
    )
    from netproto_twisted.testing.nntp import NewsServer, start_news_server
    from netproto_twisted.testing.smtp import (
        CapturedMail,
        SMTPCapture,
        SMTPCaptureStopped,
        SMTPCaptureTimeout,
        start_smtp_capture,
    )
    from netproto_twisted.testing.smtp_memory import MemorySMTPCapture, memory_smtp_capture
    from netproto_twisted.testing.telnet import telnet_server_factory
    from netproto_twisted.testing.xmlrpc import XMLRPCTestServer, serve_xmlrpc

#: Where each re-exported name lives: imported on first use, so that a suite
#: testing one protocol does not import all of them (PEP 562).
_LAZY: dict[str, str] = {
    **dict.fromkeys(["FTPTestServer", "start_ftp_server"], "ftp"),
    **dict.fromkeys(["StubNotSettled", "StubOpener"], "http_client"),
    **dict.fromkeys(["ServedSite", "serve_http"], "http_server"),
    **dict.fromkeys(["MailServers", "start_mail_servers"], "mail"),
    **dict.fromkeys(["MemoryEndpoint", "NotSettled", "Pair", "connected_pair"], "memory"),
    **dict.fromkeys(["NewsServer", "start_news_server"], "nntp"),
    **dict.fromkeys(
        [
            "CapturedMail",
            "SMTPCapture",
            "SMTPCaptureStopped",
            "SMTPCaptureTimeout",
            "start_smtp_capture",
        ],
        "smtp",
    ),
    **dict.fromkeys(["MemorySMTPCapture", "memory_smtp_capture"], "smtp_memory"),
    **dict.fromkeys(["telnet_server_factory"], "telnet"),
    **dict.fromkeys(["XMLRPCTestServer", "serve_xmlrpc"], "xmlrpc"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "LOOPBACK",
    "CapturedMail",
    "FTPTestServer",
    "MailServers",
    "MemoryEndpoint",
    "MemorySMTPCapture",
    "NewsServer",
    "NotSettled",
    "Pair",
    "RunningServer",
    "SMTPCapture",
    "SMTPCaptureStopped",
    "SMTPCaptureTimeout",
    "ServedSite",
    "StubNotSettled",
    "StubOpener",
    "XMLRPCTestServer",
    "connected_pair",
    "memory_smtp_capture",
    "serve_handler",
    "serve_http",
    "serve_xmlrpc",
    "start_ftp_server",
    "start_mail_servers",
    "start_news_server",
    "start_service",
    "start_smtp_capture",
    "telnet_server_factory",
]

#: The endpoint every helper listens on unless told otherwise.
LOOPBACK = "tcp:0:interface=127.0.0.1"


@dataclass
class RunningServer:
    """A started service and where it listens."""

    service: IService
    #: ``(kind, address)`` per port, e.g. ``("tcp", "127.0.0.1:40123")``.
    addresses: list[tuple[str, str]]

    def address(self, kind: str = "tcp") -> tuple[str, int]:
        """``(host, port)`` of the first port of ``kind`` (``tcp``, ``tcp6``, ``ssl``, ``udp``)."""
        for k, where in self.addresses:
            if k == kind:
                host, _, port = where.rpartition(":")
                return host.strip("[]"), int(port)
        raise LookupError(f"no {kind} port among {self.addresses}")

    @property
    def host(self) -> str:
        """Host of the first TCP port."""
        return self.address()[0]

    @property
    def port(self) -> int:
        """Port number of the first TCP port."""
        return self.address()[1]

    def stop(self) -> defer.Deferred[None]:
        """Stop listening and close every connection; fires when all is closed."""
        return defer.maybeDeferred(self.service.stopService).addCallback(lambda _: None)


async def _start(service: IService) -> RunningServer:
    if not isinstance(service, Listening):
        raise TypeError(f"{service!r} cannot report where it listens")
    cast(Any, service).startService()  # IService's methods are untyped
    try:
        addresses = await service.when_listening()
    except BaseException:
        await defer.maybeDeferred(service.stopService)
        raise
    return RunningServer(service, addresses)


def start_service(service: IService) -> defer.Deferred[RunningServer]:
    """Start a netproto service and fire once every port listens."""
    return defer.ensureDeferred(_start(service))


def serve_handler(
    reactor: IServerReactor,
    handler: str | type,
    *,
    listen: Sequence[str] = (LOOPBACK,),
    threads: int = 4,
) -> defer.Deferred[RunningServer]:
    """Host a socketserver-style handler (class, or ``pkg.mod:Class``, or a built-in name)."""
    from netproto_twisted.sockserv import make_sockserv_service

    service = make_sockserv_service(
        reactor, handler=handler, listen=list(listen), threads=threads, name="test"
    )
    return start_service(service)
