"""The guide's example handlers (docs/sockserv.rst) run as the guide says."""

from __future__ import annotations

import re
import socket
import sys
import textwrap
from pathlib import Path

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from netproto_twisted.sockserv.handlers import resolve_handler
from tests.sockserv.test_threaded import _port, _rx, _start
from tests.twistd import REPO, Daemon

GUIDE = REPO / "docs" / "sockserv.rst"


def example_module() -> str:
    """Return the code block of the guide that starts with ``# file: upper_handlers.py``."""
    text = GUIDE.read_text()
    m = re.search(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", text)
    assert m is not None, "no python code block in the guide"
    for block in re.finditer(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", text):
        code = textwrap.dedent(block.group(1))
        if code.startswith("# file: upper_handlers.py"):
            return code
    raise AssertionError("the guide has no '# file: upper_handlers.py' block")


class GuideExampleTests(TestCase):
    """Save the guide's module, then serve it as the guide shows."""

    timeout = 30

    def setUp(self) -> None:
        self.app_dir = Path(self.mktemp()).absolute()
        self.app_dir.mkdir(parents=True)
        (self.app_dir / "upper_handlers.py").write_text(example_module())
        self.addCleanup(sys.modules.pop, "upper_handlers", None)

    def test_blocking_handler_under_twistd(self) -> None:
        daemon = Daemon(
            ["netproto-socket", "--handler", "upper_handlers:Upper",
             "--listen", "tcp:0:interface=127.0.0.1"],
            self.app_dir,
        )  # fmt: skip
        self.addCleanup(daemon.stop)
        port = int(daemon.wait_for(r"socket listening on tcp 127\.0\.0\.1:(\d+)").group(1))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"abc\ndef\n")
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(_rx(s, 100), b"ABC\nDEF\n")

    async def test_async_and_datagram_handlers(self) -> None:
        async_upper = resolve_handler("upper_handlers:AsyncUpper", self.app_dir)
        _, addrs = await _start(self, async_upper, ["tcp:0:interface=127.0.0.1"])
        datagram = resolve_handler("upper_handlers:UpperDatagram", self.app_dir)
        _, udp_addrs = await _start(self, datagram, ["udp:0:interface=127.0.0.1"])

        def client() -> tuple[bytes, bytes]:
            with socket.create_connection(("127.0.0.1", _port(addrs)), timeout=10) as s:
                s.sendall(b"async\n")
                s.shutdown(socket.SHUT_WR)
                stream = _rx(s, 100)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.settimeout(10)
                u.sendto(b"dgram", ("127.0.0.1", _port(udp_addrs)))
                return stream, u.recv(100)

        self.assertEqual(await deferToThread(client), (b"ASYNC\n", b"DGRAM"))
