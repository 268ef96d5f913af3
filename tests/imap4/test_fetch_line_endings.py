"""FETCH and SEARCH over LF files: sizes from ``W=`` without a file read, CRLF offsets."""

from __future__ import annotations

import os
from typing import BinaryIO

from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.imap4.server.fetch import (
    FetchEntry,
    MessageCache,
    SearchContext,
    fetch_batch,
    search_batch,
)
from netproto_twisted.imap4.wire.fetchspec import FetchAtt, Section
from netproto_twisted.imap4.wire.search import SearchKey
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
