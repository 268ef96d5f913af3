"""The sans-I/O FTP wire layer: replies, addresses, MLSx facts, listings; with Hypothesis."""

from __future__ import annotations

import contextlib
import ipaddress
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.ftp import _wire as w
from netproto_twisted.ftp.listing import format_list_line, parse_list_line
from netproto_twisted.ftp.paths import resolve_virtual

FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


class ReplyTests(SynchronousTestCase):
    def _parse(self, data: bytes) -> list[w.FTPReply]:
        parser = w.ReplyParser()
        out = []
        for line in data.split(b"\r\n")[:-1]:
            reply = parser.feed(line)
            if reply is not None:
                out.append(reply)
        return out

    def test_single(self) -> None:
        self.assertEqual(w.format_reply(200, "ok"), b"200 ok\r\n")
        self.assertEqual(self._parse(b"200 ok\r\n"), [w.FTPReply(200, ("ok",))])

    def test_multi_line_with_forged_end_line(self) -> None:
        data = w.format_reply(211, ["Features:", "226 fake end", "End"])
        self.assertEqual(data, b"211-Features:\r\n 226 fake end\r\n211 End\r\n")
        expected = w.FTPReply(211, ("Features:", " 226 fake end", "End"))
        self.assertEqual(self._parse(data), [expected])

    def test_crlf_in_text_cannot_forge_a_reply(self) -> None:
        self.assertEqual(w.format_reply(550, "a\r\n230 logged in"), b"550 a  230 logged in\r\n")

    def test_garbage(self) -> None:
        with self.assertRaises(w.CommandSyntaxError):
            w.ReplyParser().feed(b"HTTP/1.1 200 OK")

    @FAST
    @given(st.integers(100, 599), st.lists(_texts, min_size=1, max_size=5))
    def test_round_trip(self, code: int, lines: list[str]) -> None:
        replies = self._parse(w.format_reply(code, lines))
        self.assertEqual(len(replies), 1)
        self.assertEqual(replies[0].code, code)
        self.assertEqual(len(replies[0].lines), len(lines))

    @FAST
    @given(st.binary(max_size=200))
    def test_parser_never_crashes(self, data: bytes) -> None:
        parser = w.ReplyParser()
        for line in data.split(b"\n"):
            try:
                parser.feed(line)
            except w.CommandSyntaxError:
                parser = w.ReplyParser()


class CommandTests(SynchronousTestCase):
    def test_parse(self) -> None:
        self.assertEqual(w.parse_command(b"retr a b.txt"), ("RETR", "a b.txt"))
        self.assertEqual(w.parse_command(b"PWD"), ("PWD", ""))

    def test_non_utf8_round_trips(self) -> None:
        _verb, arg = w.parse_command(b"STOR caf\xe9")
        self.assertEqual(arg.encode("utf-8", "surrogateescape"), b"caf\xe9")

    def test_refused(self) -> None:
        for line in (b"", b"RE\x00TR x", b"STOR a\x00b", b"TOOLONG x", b"12 x"):
            with self.assertRaises(w.CommandSyntaxError):
                w.parse_command(line)

    @FAST
    @given(st.binary(max_size=100))
    def test_fuzz(self, line: bytes) -> None:
        try:
            verb, _ = w.parse_command(line)
        except w.CommandSyntaxError:
            return
        self.assertTrue(verb.isalpha() and verb.isupper() and len(verb) <= 4)


class AddressTests(SynchronousTestCase):
    @FAST
    @given(st.ip_addresses(v=4), st.integers(0, 65535))
    def test_port_round_trip(self, address: ipaddress.IPv4Address, port: int) -> None:
        self.assertEqual(w.parse_port(w.format_port(str(address), port)), (str(address), port))
        self.assertEqual(w.parse_pasv(w.format_pasv(str(address), port)), (str(address), port))

    @FAST
    @given(st.ip_addresses(), st.integers(1, 65535))
    def test_eprt_round_trip(self, address: object, port: int) -> None:
        self.assertEqual(w.parse_eprt(w.format_eprt(str(address), port)), (str(address), port))

    @FAST
    @given(st.integers(1, 65535))
    def test_epsv_round_trip(self, port: int) -> None:
        self.assertEqual(w.parse_epsv(w.format_epsv(port)), port)

    def test_bad(self) -> None:
        for arg in ("1,2,3,4,5", "256,0,0,1,4,1", "a,b,c,d,e,f", "1,2,3,4,5,-1"):
            with self.assertRaises(w.CommandSyntaxError):
                w.parse_port(arg)
        for arg in ("|3|1.2.3.4|21|", "|1|::1|21|", "|1|1.2.3.4|0|", "|1|x|21|", "1.2.3.4"):
            with self.assertRaises(w.CommandSyntaxError):
                w.parse_eprt(arg)

    @FAST
    @given(st.text(max_size=60))
    def test_fuzz(self, text: str) -> None:
        for parse in (w.parse_port, w.parse_eprt, w.parse_pasv, w.parse_epsv):
            with contextlib.suppress(w.CommandSyntaxError):
                parse(text)


class FactsTests(SynchronousTestCase):
    def test_mlsx(self) -> None:
        line = w.format_mlsx_facts({"type": "file", "size": "3"}, "a b;c.txt")
        self.assertEqual(line, "type=file;size=3; a b;c.txt")
        self.assertEqual(w.parse_mlsx_line(line), ("a b;c.txt", {"type": "file", "size": "3"}))

    @FAST
    @given(st.dictionaries(st.sampled_from(["type", "size", "perm", "x.y"]),
                           st.text("abcdef0123", max_size=8)), _texts.filter(bool))
    def test_mlsx_round_trip(self, facts: dict[str, str], name: str) -> None:
        self.assertEqual(w.parse_mlsx_line(w.format_mlsx_facts(facts, name)), (name, facts))

    @FAST
    @given(st.integers(0, 4_000_000_000))
    def test_time_val(self, stamp: int) -> None:
        self.assertEqual(w.parse_time_val(w.format_time_val(stamp)), stamp)

    def test_time_val_bad(self) -> None:
        for text in ("2024", "20241301000000", "2024010100000x", "20240101000000.x"):
            with self.assertRaises(w.CommandSyntaxError):
                w.parse_time_val(text)


class ListingTests(SynchronousTestCase):
    now = 1_700_000_000.0

    @FAST
    @given(st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1,
                   max_size=30).filter(lambda s: s.strip() == s and " -> " not in s),
           st.integers(0, 2**40), st.integers(0, 1_700_000_000), st.booleans())
    def test_unix_round_trip(self, name: str, size: int, mtime: int, is_dir: bool) -> None:
        mode = (0o040755 if is_dir else 0o100644)
        line = format_list_line(name, mode, size, mtime, now=self.now)
        entry = parse_list_line(line, now=self.now)
        assert entry is not None
        kind = "dir" if is_dir else "file"
        self.assertEqual((entry.name, entry.size, entry.type), (name, size, kind))
        self.assertIsNotNone(entry.modify)
        assert entry.modify is not None
        self.assertLess(abs(entry.modify - mtime), 366 * 86400)

    def test_real_servers(self) -> None:
        cases = {
            "drwxr-xr-x    2 0        0            4096 Jan 02  2020 pub": ("pub", "dir", 4096),
            "-rw-r--r-- 1 owner group 1234 Mar  4 12:34 a file.txt": ("a file.txt", "file", 1234),
            "lrwxrwxrwx 1 root root 7 Jan 1 2021 lib -> usr/lib": ("lib", "link", 7),
            "01-16-24  02:03PM       <DIR>          Documents": ("Documents", "dir", None),
            "01-16-2024  09:03AM             5123 report.pdf": ("report.pdf", "file", 5123),
        }
        for line, (name, kind, size) in cases.items():
            entry = parse_list_line(line, now=self.now)
            assert entry is not None
            self.assertEqual((entry.name, entry.type, entry.size), (name, kind, size), line)
        self.assertIsNone(parse_list_line("total 12"))
        entry = parse_list_line("01-16-24  02:03PM  <DIR>  Documents")
        assert entry is not None and entry.modify is not None
        self.assertEqual(time.gmtime(entry.modify).tm_hour, 14)

    @FAST
    @given(st.text(max_size=80))
    def test_fuzz(self, line: str) -> None:
        with contextlib.suppress(w.CommandSyntaxError):
            parse_list_line(line, now=self.now)


class PathTests(SynchronousTestCase):
    def test_tricks_stay_inside(self) -> None:
        for arg in ("../../etc/passwd", "..\\..\\etc", "/../../x", "a/../../..", "//etc",
                    "./././..", "%2e%2e/x", "\uff0e\uff0e/x"):
            path = resolve_virtual("/home", arg)
            self.assertTrue(path.startswith("/"), path)
            self.assertNotIn("/../", path + "/")
        self.assertEqual(resolve_virtual("/a/b", "..\\..\\..\\etc"), "/etc")
        self.assertEqual(resolve_virtual("/", "%2e%2e"), "/%2e%2e")

    def test_nul(self) -> None:
        from netproto_twisted.ftp.errors import PathOutsideRoot

        with self.assertRaises(PathOutsideRoot):
            resolve_virtual("/", "a\x00b")

    def test_nfc(self) -> None:
        self.assertEqual(resolve_virtual("/", "cafe\u0301"), "/caf\u00e9")

    @FAST
    @given(st.text(max_size=50).filter(lambda s: "\x00" not in s))
    def test_never_climbs(self, arg: str) -> None:
        path = resolve_virtual("/x", arg)
        self.assertTrue(path.startswith("/"))
        self.assertNotIn("..", path.split("/"))
