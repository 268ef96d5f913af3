"""The classic XML-RPC validator suite (validator1), in both directions against the stdlib."""

from __future__ import annotations

import xmlrpc.client
from typing import Any

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from netproto_twisted.testing import serve_xmlrpc
from netproto_twisted.xmlrpc import Proxy
from tests.xmlrpc.helpers import StdlibServer, sample_registry, validator_cases


class ValidatorTests(TestCase):
    """Every validator1 case: stdlib client to our server, ours to the stdlib's, ours to ours."""

    async def test_stdlib_client_against_our_server(self) -> None:
        server = await serve_xmlrpc(reactor, sample_registry())
        self.addCleanup(server.stop)
        proxy = xmlrpc.client.ServerProxy(server.url)
        self.addCleanup(proxy("close"))

        def run() -> list[tuple[Any, Any]]:
            return [
                (getattr(proxy, name)(*params), check(None))
                for name, params, check in validator_cases()
            ]

        for got, expected in await deferToThread(run):
            self.assertEqual(got, expected)

    async def test_our_client_against_stdlib_server(self) -> None:
        stdlib = StdlibServer()
        self.addCleanup(stdlib.stop)
        proxy = Proxy(stdlib.url, reactor)
        self.addCleanup(proxy.close)
        for name, params, check in validator_cases():
            self.assertEqual(await proxy.call(name, *params), check(None), name)

    async def test_our_client_against_our_server(self) -> None:
        server = await serve_xmlrpc(reactor, sample_registry())
        self.addCleanup(server.stop)
        proxy = Proxy(server.url, reactor)
        self.addCleanup(proxy.close)
        multi = proxy.multicall()
        cases = validator_cases()
        for name, params, _check in cases:
            multi.add_call(name, *params)
        results = list(await multi())
        self.assertEqual(results, [check(None) for _, _, check in cases])
