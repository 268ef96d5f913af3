"""XML-RPC mounted on the [http] site: its own body limit holds before the body is read."""

from __future__ import annotations

import contextlib
import http.client
import socket
import xmlrpc.client
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from netproto_twisted.http.server.site import HTTPLimits
from netproto_twisted.testing import serve_http
from netproto_twisted.testing.http_server import ServedSite
from netproto_twisted.xmlrpc.server import ServerSettings, XMLRPCResource
from tests.xmlrpc.helpers import sample_registry

reactor: Any = _reactor


class MountedBodyLimitTests(TestCase):
    """The resource's ``max_body`` (1,000 here) is lower than the site's (10 MiB)."""

    async def serve(self) -> ServedSite:
        resource = XMLRPCResource(sample_registry(), reactor, ServerSettings(max_body=1000))
        server = await serve_http(
            reactor, mounts={"/RPC2": resource}, limits=HTTPLimits(max_body=10 * 1024 * 1024)
        )
        self.addCleanup(server.stop)
        return server

    async def test_calls_work(self) -> None:
        server = await self.serve()

        def run() -> Any:
            with xmlrpc.client.ServerProxy(f"http://{server.host}:{server.port}/RPC2") as proxy:
                return proxy.add(2, 3)

        self.assertEqual(await deferToThread(run), 5)

    async def test_declared_length_over_the_limit_is_413_with_no_body_sent(self) -> None:
        server = await self.serve()

        def run() -> tuple[int, bytes]:
            conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
            try:
                conn.putrequest("POST", "/RPC2")
                conn.putheader("Content-Type", "text/xml")
                conn.putheader("Content-Length", "5000")  # under the site's limit
                conn.putheader("Expect", "100-continue")
                conn.endheaders()  # no body: the answer must come anyway, without 100
                response = conn.getresponse()
                return response.status, response.read()
            finally:
                conn.close()

        status, body = await deferToThread(run)
        self.assertEqual(status, 413)
        self.assertEqual(body, b"request body too large\n")

    async def test_chunked_body_counted_as_it_comes(self) -> None:
        server = await self.serve()

        def run() -> bytes:
            with socket.create_connection((server.host, server.port), timeout=10) as sock:
                # 4,000 bytes in chunks of 400, and no last chunk.
                sock.sendall(
                    b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                    + (b"190\r\n" + b"<" * 400 + b"\r\n")
                    * 10
                )
                data = b""
                with contextlib.suppress(ConnectionError):
                    while chunk := sock.recv(65536):
                        data += chunk
                return data

        answer = await deferToThread(run)
        # Refused by the site while the body came (the connection closed after
        # the 413), not by the resource once a whole body was in.
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer)
        self.assertIn(b"\r\nConnection: close\r\n", answer)

    async def test_a_body_under_the_limit_still_reaches_the_parser(self) -> None:
        server = await self.serve()
        call = xmlrpc.client.dumps((1, 2), "add").encode()
        self.assertLess(len(call), 1000)

        def run() -> tuple[int, bytes]:
            conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
            try:
                conn.request(
                    "POST",
                    "/RPC2",
                    body=iter([call[:50], call[50:]]),
                    headers={"Content-Type": "text/xml"},
                    encode_chunked=True,
                )
                response = conn.getresponse()
                return response.status, response.read()
            finally:
                conn.close()

        status, body = await deferToThread(run)
        self.assertEqual(status, 200)
        self.assertEqual(xmlrpc.client.loads(body)[0], (3,))
