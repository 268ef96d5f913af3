"""An in-process XML-RPC server on an ephemeral loopback port, for users' trial suites.

::

    from twisted.internet import reactor
    from netproto_twisted.testing import serve_xmlrpc
    from netproto_twisted.xmlrpc import MethodRegistry, Proxy

    class MyTests(TestCase):
        async def test_add(self):
            registry = MethodRegistry()
            registry.register_function(lambda a, b: a + b, "add")
            server = await serve_xmlrpc(reactor, registry)
            self.addCleanup(server.stop)
            proxy = Proxy(server.url, reactor)
            self.addCleanup(proxy.close)
            self.assertEqual(await proxy.add(1, 2), 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from twisted.cred.portal import Portal
from twisted.internet import defer

from netproto_twisted.core.access import ConnectionGuard
from netproto_twisted.core.reactors import IServerReactor
from netproto_twisted.core.service import EndpointsService
from netproto_twisted.xmlrpc.methods import MethodRegistry
from netproto_twisted.xmlrpc.server import ServerSettings, XMLRPCResource, XMLRPCSite

__all__ = ["XMLRPCTestServer", "serve_xmlrpc"]


@dataclass
class XMLRPCTestServer:
    """A running XML-RPC server: its resource, where it listens, how to stop it."""

    resource: XMLRPCResource
    service: EndpointsService
    #: The connection guard in front of the site (``guard.protocols``: open connections).
    guard: ConnectionGuard
    host: str
    port: int
    path: str

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/RPC2``."""
        return f"http://{self.host}:{self.port}{self.path}"

    def stop(self) -> defer.Deferred[None]:
        """Stop listening and close every connection; fires when all is closed."""
        return defer.maybeDeferred(self.service.stopService).addCallback(lambda _: None)


async def _serve(
    reactor: IServerReactor,
    registry: MethodRegistry,
    settings: ServerSettings | None,
    path: str,
    listen: Sequence[str],
    portal: Portal | None,
) -> XMLRPCTestServer:
    resource = XMLRPCResource(registry, reactor, settings, portal=portal)
    site = XMLRPCSite(resource, path)
    guard = ConnectionGuard(site, reactor)
    service = EndpointsService("xmlrpc", reactor, list(listen), guard=guard)
    cast(Any, service).startService()
    addresses = await service.when_listening()
    host, _, port = addresses[0][1].rpartition(":")
    return XMLRPCTestServer(resource, service, guard, host.strip("[]"), int(port), path)


def serve_xmlrpc(
    reactor: IServerReactor,
    registry: MethodRegistry,
    settings: ServerSettings | None = None,
    *,
    path: str = "/RPC2",
    listen: Sequence[str] = ("tcp:0:interface=127.0.0.1",),
    portal: Portal | None = None,
) -> defer.Deferred[XMLRPCTestServer]:
    """Serve ``registry`` over XML-RPC on loopback; fire once it listens."""
    return defer.ensureDeferred(_serve(reactor, registry, settings, path, listen, portal))
