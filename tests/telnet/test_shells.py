"""The Python shell's line editing with non-ASCII input (UTF-8 split across writes)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.telnet.interfaces import IShell, TerminalInfo
from netproto_twisted.telnet.shells import PythonShellFactory


class _Output:
    def __init__(self) -> None:
        self.data = b""
        self.exited = False

    def write(self, data: bytes) -> None:
        self.data += data

    def exit(self) -> None:
        self.exited = True

    def register_producer(self, producer: object) -> None:
        raise AssertionError("the Python shell has no producer")


class Utf8InputTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.output = _Output()
        self.shell: IShell = PythonShellFactory().open_shell(
            TerminalInfo(user="alice"), self.output
        )
        # The manhole's own globals (it copies the namespace it is given).
        self.namespace: dict[str, object] = self.shell.server.terminalProtocol.namespace  # type: ignore[attr-defined]

    def type(self, *chunks: bytes) -> None:
        for chunk in chunks:
            self.shell.data_received(chunk)

    def test_character_split_across_writes(self) -> None:
        source = "x = 'é€😀'\r".encode()
        # Every way of cutting the line in two: each multi-byte character split once.
        for cut in range(1, len(source)):
            self.namespace.pop("x", None)
            self.type(source[:cut], source[cut:])
            self.assertEqual(self.namespace["x"], "é€😀", cut)
        # One byte per write, and the echo carries the characters back.
        self.output.data = b""
        self.type(*(bytes((b,)) for b in "y = 'ü'\r".encode()))
        self.assertEqual(self.namespace["y"], "ü")
        self.assertIn("ü".encode(), self.output.data)

    def test_line_editing_counts_characters(self) -> None:
        # Backspace (DEL) erases the whole character; left arrow moves over one.
        self.type("z = 'aé".encode(), b"\x7f", "ö'".encode(), b"\r")
        self.assertEqual(self.namespace["z"], "aö")
        self.type("w = '€b'".encode(), b"\x1b[D\x1b[D\x1b[D", b"c", b"\r")
        self.assertEqual(self.namespace["w"], "c€b")
        self.type(b"print(len(w))\r")
        self.assertIn(b"\r\n3\r\n", self.output.data)

    def test_malformed_bytes_become_replacement_characters(self) -> None:
        self.type(b"v = '\xc3", b"a\xff'\r")  # a lead byte cut short by "a"; a stray 0xff
        self.assertEqual(self.namespace["v"], "\ufffda\ufffd")
        self.type(b"u = 'ok'\r")
        self.assertEqual(self.namespace["u"], "ok")
