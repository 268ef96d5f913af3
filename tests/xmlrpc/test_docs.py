"""The examples of docs/xmlrpc.rst run as the guide shows them."""

from __future__ import annotations

import contextlib
import io
import re
import textwrap
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from netproto_twisted.testing import serve_xmlrpc
from netproto_twisted.xmlrpc import MethodRegistry, Proxy
from tests.twistd import REPO

GUIDE = REPO / "docs" / "xmlrpc.rst"


def code_blocks() -> list[str]:
    """The guide's ``.. code-block:: python`` blocks, dedented."""
    text = GUIDE.read_text()
    return [
        textwrap.dedent(m.group(1))
        for m in re.finditer(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", text)
    ]


def block_with(marker: str) -> str:
    for code in code_blocks():
        if marker in code:
            return code
    raise AssertionError(f"no code block of the guide contains {marker!r}")


class GuideTests(TestCase):
    timeout = 30

    def test_every_block_compiles(self) -> None:
        blocks = code_blocks()
        self.assertGreaterEqual(len(blocks), 3)
        for code in blocks:
            compile(code, str(GUIDE), "exec")

    async def test_server_example(self) -> None:
        code = block_with("XMLRPCSite(resource")
        code = code.replace("reactor.listenTCP(8000,", "port = reactor.listenTCP(0,")
        code = code.replace("reactor.run()", "")
        namespace: dict[str, Any] = {}
        exec(compile(code, str(GUIDE), "exec"), namespace)
        port = namespace["port"]
        self.addCleanup(port.stopListening)
        proxy = Proxy(f"http://127.0.0.1:{port.getHost().port}/RPC2", reactor)
        self.addCleanup(proxy.close)
        self.assertEqual(await proxy.add(1, 2), 3)
        self.assertEqual(await proxy.later("x"), "x")
        self.assertIs(await proxy.slow.sleep(0), True)

    async def test_client_example(self) -> None:
        registry = MethodRegistry()
        registry.register_function(lambda a, b: a + b, "add")
        server = await serve_xmlrpc(reactor, registry)
        self.addCleanup(server.stop)
        code = block_with("proxy.multicall()")
        code = code.replace("http://127.0.0.1:8080/RPC2", server.url)
        code = code.replace("task.react(lambda reactor: defer.ensureDeferred(main(reactor)))", "")
        namespace: dict[str, Any] = {}
        exec(compile(code, str(GUIDE), "exec"), namespace)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            await namespace["main"](reactor)
        lines = out.getvalue().splitlines()
        self.assertEqual(lines[0:2], ["3", "5"])
        self.assertIn("system.listMethods", lines[2])
        self.assertEqual(lines[3:], ["3", "-32601"])

    async def test_error_example(self) -> None:
        """The guide's except clauses catch a refused connection as ServerProxy code would."""
        import socket

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        namespace: dict[str, Any] = {}
        exec(compile(block_with("add_or_explain"), str(GUIDE), "exec"), namespace)
        proxy = Proxy(f"http://127.0.0.1:{port}/RPC2", reactor)
        self.addCleanup(proxy.close)
        result = await namespace["add_or_explain"](proxy)
        self.assertTrue(result.startswith("no answer: "), result)
        self.assertIn("refused", result)
