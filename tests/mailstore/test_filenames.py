"""Maildir file names, flag letters and the dovecot-keywords file."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.mailstore.filenames import (
    ANSWERED,
    DELETED,
    DRAFT,
    FLAGGED,
    FORWARDED,
    SEEN,
    KeywordTable,
    UniqueNames,
    flags_from_letters,
    format_base,
    is_acceptable_filename,
    letters_for_flags,
    parse_filename,
    parse_keywords_file,
    serialize_keywords_file,
)


class NameTests(SynchronousTestCase):
    def test_parse(self) -> None:
        parsed = parse_filename("1700.M5P9.host,S=1234,W=1260:2,FS")
        self.assertEqual(parsed.base, "1700.M5P9.host,S=1234,W=1260")
        self.assertEqual(parsed.size, 1234)
        self.assertEqual(parsed.virtual_size, 1260)
        self.assertEqual(parsed.letters, "FS")
        self.assertIsNone(parse_filename("1.M1P1.h,S=3:2,").virtual_size)
        self.assertIsNone(parse_filename("1.M1P1.h,S=3,W=x1:2,").virtual_size)
        self.assertEqual(format_base("1.M1P1.h", 10, 12), "1.M1P1.h,S=10,W=12")
        self.assertEqual(parse_filename(format_base("b", 10, 12) + ":2,S").virtual_size, 12)
        bare = parse_filename("foreign-file")
        self.assertEqual((bare.base, bare.info, bare.size, bare.letters),
                         ("foreign-file", None, None, ""))
        self.assertEqual(parse_filename("x,S=abc:1,weird").letters, "")

    def test_acceptable(self) -> None:
        self.assertTrue(is_acceptable_filename("1.M1P1.h,S=3:2,S"))
        for bad in ("", ".hidden", "a\nb", "a\rb", "bad\udcff", "a/b", "a\x00b", "é\udcff"):
            self.assertFalse(is_acceptable_filename(bad), repr(bad))
        self.assertTrue(is_acceptable_filename("1.M1P1.hôte,S=3:2,S"))

    @given(st.text(alphabet=st.sampled_from("a.,:/\r\n\x00é\udcff"), max_size=8) | st.text())
    def test_acceptable_is_the_plain_rule(self, name: str) -> None:
        try:
            name.encode("utf-8")
            encodable = True
        except UnicodeEncodeError:
            encodable = False
        plain = bool(name) and not name.startswith(".") and not set("\r\n\x00/") & set(name)
        self.assertEqual(is_acceptable_filename(name), plain and encodable)

    def test_unique_names(self) -> None:
        names = UniqueNames("mx/1:2")
        self.assertEqual(names.hostname, "mx\\0571\\0722")
        bases = {names.new_base(1700000000.25) for _ in range(1000)}
        self.assertEqual(len(bases), 1000)
        sample = next(iter(bases))
        self.assertRegex(sample, r"^1700000000\.M250000P\d+Q\d+R[0-9a-f]{8}\.mx\\0571\\0722$")


class FlagTests(SynchronousTestCase):
    def test_system_letters(self) -> None:
        table = KeywordTable()
        self.assertEqual(
            flags_from_letters("DFPRST", table),
            {DRAFT, FLAGGED, FORWARDED, ANSWERED, SEEN, DELETED},
        )
        letters, missing = letters_for_flags([SEEN, DELETED, "\\Recent", "\\seen"], table)
        self.assertEqual((letters, missing), ("ST", []))

    def test_keywords(self) -> None:
        table = parse_keywords_file(b"0 $Junk\n2 Work\nbad line\n30 Toolate\n1\n")
        self.assertEqual(table.by_index, {0: "$Junk", 2: "Work"})
        self.assertEqual(flags_from_letters("Sac", table), {SEEN, "$Junk", "Work"})
        letters, missing = letters_for_flags(["work", "New"], table)
        self.assertEqual((letters, missing), ("c", ["New"]))
        self.assertEqual(table.assign("New"), "b")
        self.assertEqual(serialize_keywords_file(table), b"0 $Junk\n1 New\n2 Work\n")

    def test_unknown_letters_are_kept(self) -> None:
        table = KeywordTable({0: "A"})
        letters, _ = letters_for_flags([SEEN], table, keep="aSXz")
        self.assertEqual(letters, "SXz")

    def test_keyword_table_full(self) -> None:
        table = KeywordTable({i: f"k{i}" for i in range(26)})
        self.assertIsNone(table.assign("one-too-many"))
