"""FETCH and SEARCH over LF files: sizes from ``W=`` without a file read, CRLF offsets."""

from __future__ import annotations

import os
from typing import BinaryIO, cast

from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.imap4.server import mime
from netproto_twisted.imap4.server.fetch import (
    FetchEntry,
    MessageCache,
    SearchContext,
    _fetch_one,
    _Message,
    fetch_batch,
    fetch_pieces,
    search_batch,
)
from netproto_twisted.imap4.wire.fetchspec import FetchAtt, Section
from netproto_twisted.imap4.wire.search import SearchKey
from netproto_twisted.imap4.wire.serialise import encode
from netproto_twisted.mailstore.eol import HEAD_READ
from netproto_twisted.mailstore.errors import NoSuchMessage
from netproto_twisted.mailstore.folder import MaildirFolder, MessageInfo
from netproto_twisted.mailstore.fsops import FsOps

LF_FILE = b"Subject: lf\n\nline one\nline two\n"  # CRLF size 35
OLD_FILE = b"Subject: old\r\n\r\nbody\r\n"  # stored with CRLF, no W=


class FetchTests(SynchronousTestCase):
    def setUp(self) -> None:
        path = os.path.abspath(self.mktemp())
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(path, sub))
        names = {
            f"1.M1P1.h,S={len(LF_FILE)},W=35:2,": LF_FILE,
            "2.M1P1.h:2,": LF_FILE,  # no sizes in the name (another program's file)
            f"3.M1P1.h,S={len(OLD_FILE)}:2,": OLD_FILE,
        }
        for name, content in names.items():
            with open(os.path.join(path, "cur", name), "wb") as f:
                f.write(content)
        self.folder = MaildirFolder(path, FsOps())
        self.entries = [
            FetchEntry(n, info) for n, info in enumerate(self.folder.sync().messages, 1)
        ]
        self.opened: list[int] = []
        original = self.folder.open_stored

        def counting(info: MessageInfo) -> BinaryIO:
            self.opened.append(info.uid)
            return original(info)

        self.folder.open_stored = counting  # type: ignore[method-assign]
        read_head = self.folder.read_head

        def counting_head(info: MessageInfo) -> tuple[bytes, int]:
            self.opened.append(info.uid)
            return read_head(info)

        self.folder.read_head = counting_head  # type: ignore[method-assign]

    def fetch(self, *atts: FetchAtt) -> list[bytes]:
        return fetch_batch(self.folder, self.entries, atts, MessageCache(), False)

    def test_rfc822_size_from_w_without_reading(self) -> None:
        out = self.fetch(FetchAtt("RFC822.SIZE"))
        self.assertEqual(
            out,
            [b"* 1 FETCH (RFC822.SIZE 35)\r\n", b"* 2 FETCH (RFC822.SIZE 35)\r\n",
             b"* 3 FETCH (RFC822.SIZE %d)\r\n" % len(OLD_FILE)],
        )  # fmt: skip
        self.assertEqual(self.opened, [2, 3])  # only the names without W= are read

    def test_body_and_partials_in_crlf_octets(self) -> None:
        crlf = LF_FILE.replace(b"\n", b"\r\n")
        out = self.fetch(
            FetchAtt("BODY", Section(), peek=True),
            FetchAtt("BODY", Section(), (3, 12), peek=True),
            FetchAtt("BODY", Section(text="TEXT"), (2, 9), peek=True),
        )
        self.assertEqual(
            out[0],
            b"* 1 FETCH (BODY[] {35}\r\n" + crlf + b" BODY[]<3> {12}\r\n" + crlf[3:15]
            + b" BODY[TEXT]<2> {9}\r\n" + crlf[15 + 2 : 15 + 11] + b")\r\n",
        )  # fmt: skip
        self.assertIn(b"BODY[] {%d}\r\n" % len(OLD_FILE) + OLD_FILE, out[2])  # no CR CR LF

    def test_bodystructure_counts_crlf(self) -> None:
        out = self.fetch(FetchAtt("BODYSTRUCTURE"))
        # "line one\r\nline two\r\n": 20 octets, 2 lines.
        self.assertIn(b' NIL NIL "7BIT" 20 2', out[0])

    def test_larger_and_smaller_use_crlf_sizes(self) -> None:
        context = SearchContext(max_seq=3, max_uid=3)
        larger = search_batch(
            self.folder, self.entries, SearchKey("LARGER", (34,)), MessageCache(), context
        )
        self.assertEqual([e.seq for e in larger], [1, 2])  # 35 octets; their files hold 31
        smaller = search_batch(
            self.folder, self.entries, SearchKey("SMALLER", (35,)), MessageCache(), context
        )
        self.assertEqual([e.seq for e in smaller], [3])


class ReadHeadTests(SynchronousTestCase):
    """``MaildirFolder.read_head``: the header with CRLF and the whole CRLF size."""

    def setUp(self) -> None:
        self.path = os.path.abspath(self.mktemp())
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(self.path, sub))
        self.folder = MaildirFolder(self.path, FsOps())

    def head(self, name: str, content: bytes) -> tuple[bytes, int]:
        with open(os.path.join(self.path, "cur", name), "wb") as f:
            f.write(content)
        (info,) = [m for m in self.folder.sync().messages if m.filename == name]
        return self.folder.read_head(info)

    def test_header_only_and_size_with_or_without_w(self) -> None:
        body = b"".join(b"body line %d\n" % i for i in range(5000))  # several blocks
        content = b"Subject: big\nX-A: 1\n\n" + body
        crlf_size = len(content) + content.count(b"\n")
        self.assertGreater(len(content), 3 * HEAD_READ)
        with_w = f"1.M1P1.h,S={len(content)},W={crlf_size}:2,"
        self.assertEqual(
            self.head(with_w, content), (b"Subject: big\r\nX-A: 1\r\n\r\n", crlf_size)
        )
        # No W=: the rest is counted (a CRLF file, an LF file, a CR at a block boundary).
        self.assertEqual(self.head("2.M1P1.h:2,", content)[1], crlf_size)
        crlf = content.replace(b"\n", b"\r\n")
        self.assertEqual(
            self.head("3.M1P1.h:2,", crlf), (b"Subject: big\r\nX-A: 1\r\n\r\n", len(crlf))
        )
        edge = b"S: x\n\n" + b"a" * (HEAD_READ - 7) + b"\r\nnext\n"
        self.assertEqual(
            self.head("4.M1P1.h:2,", edge)[1],
            len(edge.replace(b"\r\n", b"\n")) + edge.replace(b"\r\n", b"\n").count(b"\n"),
        )

    def test_long_header_no_body_and_no_header(self) -> None:
        long_header = b"".join(b"X-F%d: %s\n" % (i, b"v" * 60) for i in range(600)) + b"\nbody\n"
        header, size = self.head("1.M1P1.h:2,", long_header)
        self.assertEqual(header, long_header[:-5].replace(b"\n", b"\r\n"))
        self.assertEqual(size, len(long_header) + long_header.count(b"\n"))
        self.assertEqual(self.head("2.M1P1.h:2,", b"Subject: only\n"), (b"Subject: only\r\n", 15))
        self.assertEqual(self.head("3.M1P1.h:2,", b"\nbody\n"), (b"\r\n", 8))


class EnvelopeBytesTests(SynchronousTestCase):
    """The direct ENVELOPE serialiser gives what the generic one gives."""

    def test_same_as_encode_of_envelope(self) -> None:
        headers = [
            b'From: A <a@x.org>\r\nTo: b@y, "C, D" <c@z>\r\nSubject: hi\r\n',
            b"From: undisclosed-recipients:;\r\nSender: <>\r\nCc: x@y (comment)\r\n",
            b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nReply-To: r@x\r\n"
            b"In-Reply-To: <1@x>\r\nMessage-ID: <2@x>\r\nBcc: q@x\r\n",
            b'Subject: caf\xc3\xa9 "quoted" \\ x\r\nFrom: =?utf-8?q?A?= <a@x>\r\n',
            b"From: a@x\r\nFrom: second@x\r\nSender: s@x\r\nTo:\r\nCc: ,\r\n",
            b"X-Only: other\r\n",
            b"subject :  folded\r\n \tover\r\n\t lines \r\nFROM: a@x,\r\n b@y\r\n"
            b"To: x\rbare@cr\r\n",
            b"X-Subject: not this\r\nSubject: this\r\nReply-To:\r\n",
        ]
        for header in headers:
            fields = mime.parse_headers(header + b"\r\n")
            part = mime.Part(header, b"", fields)
            expected = encode(mime.envelope(part))
            self.assertEqual(mime.envelope_bytes(fields), expected, header)


class HeaderLevelFetchTests(SynchronousTestCase):
    """FETCH of header-level items (one loop) answers as the general path does."""

    def setUp(self) -> None:
        path = os.path.abspath(self.mktemp())
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(path, sub))
        folded = b"Subject: folded\n  over two\nFrom: A <a@x>,\n b@y\nTo: t@z\n\nbody\n"
        files = {
            f"1.M1P1.h,S={len(LF_FILE)},W=35:2,S": LF_FILE,
            "2.M1P1.h:2,": LF_FILE,
            f"3.M1P1.h,S={len(OLD_FILE)}:2,FS": OLD_FILE,
            "4.M1P1.h:2,": folded,
            "5.M1P1.h:2,T": b"no header at all",
            "6.M1P1.h:2,": b"Subject: gone\n\n",
        }
        for name, content in files.items():
            with open(os.path.join(path, "cur", name), "wb") as f:
                f.write(content)
        self.folder = MaildirFolder(path, FsOps())
        self.entries = [
            FetchEntry(n, info, recent=n == 2)
            for n, info in enumerate(self.folder.sync().messages, 1)
        ]
        os.unlink(os.path.join(path, "cur", "6.M1P1.h:2,"))  # expunged by another process

    def general(self, atts: list[FetchAtt], with_uid: bool) -> list[bytes]:
        cache = MessageCache()
        out: list[bytes] = []
        for entry in self.entries:
            try:
                message = _Message(self.folder, entry.info, cache)
                pieces = _fetch_one(entry, message, atts, with_uid)
            except (FileNotFoundError, NoSuchMessage):
                continue
            out += cast("list[bytes]", pieces)
        return out

    def test_same_responses(self) -> None:
        lists = [
            ["FLAGS", "RFC822.SIZE", "ENVELOPE"],
            ["ENVELOPE", "UID"],
            ["INTERNALDATE", "MODSEQ", "FLAGS"],
            ["RFC822.SIZE"],
        ]
        for names in lists:
            atts = [FetchAtt(name) for name in names]
            for with_uid in (False, True):
                expected = self.general(atts, with_uid)
                cache = MessageCache()
                self.assertEqual(
                    fetch_batch(self.folder, self.entries, atts, cache, with_uid), expected
                )
                # Again from the cache (nothing read).
                self.assertEqual(
                    fetch_batch(self.folder, self.entries, atts, cache, with_uid), expected
                )

    def test_budget_stops_after_the_entry_that_passes_it(self) -> None:
        atts = [FetchAtt("FLAGS"), FetchAtt("ENVELOPE")]
        pieces, count = fetch_pieces(
            self.folder, self.entries, atts, MessageCache(), False, budget=1
        )
        self.assertEqual((len(pieces), count), (1, 1))
        pieces, count = fetch_pieces(self.folder, self.entries, atts, MessageCache(), False)
        self.assertEqual((len(pieces), count), (5, 6))
