"""Hypothesis properties of the SMTP sans-I/O core: roundtrips, chunking, fuzzing."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import contextlib
import re
import string

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.errors import RemoteProtocolError
from netproto_twisted.smtp import (
    EXTENSIONS,
    MAX_REPLY_LINE,
    AddressError,
    CommandError,
    Extensions,
    MailFrom,
    RcptTo,
    Reply,
    ReplyParser,
    canonical_address,
    format_mail_from,
    format_rcpt_to,
    parse_auth,
    parse_bdat,
    parse_command,
    parse_ehlo_reply,
    parse_mail_from,
    parse_path,
    parse_rcpt_to,
    quote_local_part,
    split_address,
    xtext_decode,
    xtext_encode,
)

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
atoms = st.text(ATEXT, min_size=1, max_size=10)
dot_strings = st.lists(atoms, min_size=1, max_size=4).map(".".join)
utf8_atoms = st.text(ATEXT + "éüßδοκιμή中文", min_size=1, max_size=8)
quoted_content = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from("éü中"),
    max_size=15,
)
letdig = string.ascii_letters + string.digits
labels = st.builds(
    lambda first, middle, last: first + middle + last if middle or last else first,
    st.sampled_from(letdig),
    st.text(letdig + "-", max_size=10),
    st.text(letdig, max_size=1),
).filter(lambda label: not label.endswith("-"))
domains = st.lists(labels, min_size=1, max_size=4).map(".".join)
ipv4 = st.ip_addresses(v=4).map(lambda a: f"[{a}]")
ipv6 = st.ip_addresses(v=6).map(lambda a: f"[IPv6:{a.compressed}]")


@st.composite
def addresses(draw: st.DrawFn, utf8: bool = False) -> str:
    """Addresses in any accepted spelling (quoted or not), possibly non-canonical."""
    if draw(st.booleans()):
        local = draw(st.lists(utf8_atoms if utf8 else atoms, min_size=1, max_size=3).map(".".join))
    else:
        content = draw(quoted_content if utf8 else quoted_content.filter(str.isascii))
        local = '"' + content.replace("\\", "\\\\").replace('"', '\\"') + '"'
    domain = draw(st.one_of(domains, ipv4, ipv6))
    return f"{local}@{domain}"


mail_params = st.fixed_dictionaries(
    {},
    optional={
        "SIZE": st.integers(0, 10**15).map(str),
        "BODY": st.sampled_from(["7BIT", "8BITMIME", "BINARYMIME"]),
        "SMTPUTF8": st.none(),
        "RET": st.sampled_from(["FULL", "HDRS"]),
        "ENVID": st.text(
            st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=30
        ),
        "AUTH": st.one_of(st.just("<>"), addresses().map(canonical_address)),
    },
)
notify = st.one_of(
    st.just("NEVER"),
    st.lists(
        st.sampled_from(["SUCCESS", "FAILURE", "DELAY"]), min_size=1, max_size=3, unique=True
    ).map(",".join),
)
rcpt_params = st.fixed_dictionaries(
    {},
    optional={
        "NOTIFY": notify,
        "ORCPT": st.text(
            st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40
        ).map(lambda a: "rfc822;" + a),
    },
)

reply_text = st.text(st.characters(codec="utf-8", blacklist_characters="\r\n\x00"), max_size=60)
reply_codes = st.integers(200, 559).filter(lambda c: (c // 10) % 10 <= 5)


@st.composite
def replies(draw: st.DrawFn) -> Reply:
    """Replies whose lines fit on one wire line each (so they roundtrip exactly)."""
    code = draw(reply_codes)
    lines = tuple(draw(st.lists(reply_text, min_size=1, max_size=5)))
    enhanced = None
    if code // 100 != 3 and draw(st.booleans()):
        enhanced = f"{code // 100}.{draw(st.integers(0, 999))}.{draw(st.integers(0, 999))}"
    else:
        assume(not re.match(r"[245]\.[0-9]{1,3}\.[0-9]{1,3}( |$)", lines[0]))
    return Reply(code, lines, enhanced)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """Split ``data`` at the given offsets."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return pieces


class RoundtripTests(SynchronousTestCase):
    """parse(format(x)) == x."""

    @FAST
    @given(addresses(utf8=True), mail_params)
    def test_mail_from_roundtrip(self, address: str, params: dict[str, str | None]) -> None:
        canonical = canonical_address(address)
        if not canonical.isascii():
            params = {**params, "SMTPUTF8": None}
        line = format_mail_from(address, params)
        self.assertTrue(line.endswith(b"\r\n"))
        command = parse_command(line[:-2])
        self.assertEqual(command.verb, "MAIL")
        parsed = parse_mail_from(command.argument, extensions=EXTENSIONS)
        self.assertEqual(parsed, MailFrom(canonical, params))
        # Canonical forms are fixed points.
        self.assertEqual(format_mail_from(canonical, params), line)

    @FAST
    @given(addresses(), rcpt_params)
    def test_rcpt_to_roundtrip(self, address: str, params: dict[str, str | None]) -> None:
        line = format_rcpt_to(address, params)
        command = parse_command(line[:-2])
        parsed = parse_rcpt_to(command.argument, extensions=EXTENSIONS, smtputf8=False)
        self.assertEqual(parsed, RcptTo(canonical_address(address), params))

    @FAST
    @given(addresses(utf8=True))
    def test_split_and_quote_agree(self, address: str) -> None:
        canonical = canonical_address(address)
        local, domain = split_address(canonical)
        self.assertEqual(f"{quote_local_part(local)}@{domain}", canonical)
        self.assertEqual(parse_path(f"<{canonical}>", utf8=True), (canonical, ""))

    @FAST
    @given(st.text())
    def test_xtext_roundtrip(self, value: str) -> None:
        encoded = xtext_encode(value)
        self.assertTrue(encoded.isascii())
        self.assertNotIn("=", encoded)
        self.assertNotIn(" ", encoded)
        self.assertEqual(xtext_decode(encoded), value)

    @FAST
    @given(st.text(string.printable.replace("+", "").replace("=", "").strip() or "x"))
    def test_xtext_plain_is_identity(self, value: str) -> None:
        assume(all(0x21 <= ord(c) <= 0x7E for c in value))
        self.assertEqual(xtext_encode(value), value)
        self.assertEqual(xtext_decode(value), value)


ehlo_words = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12
)
ehlo_keywords = st.from_regex(r"[A-Z0-9][A-Z0-9-]{0,15}", fullmatch=True)


class ExtensionsProperties(SynchronousTestCase):
    """Extensions.to_reply and parse_ehlo_reply are inverse."""

    @FAST
    @given(
        ehlo_words,
        st.dictionaries(ehlo_keywords, st.lists(ehlo_words, max_size=4).map(tuple), max_size=8),
        reply_text,
    )
    def test_roundtrip(
        self, domain: str, keywords: dict[str, tuple[str, ...]], greeting: str
    ) -> None:
        if "AUTH" in keywords:
            keywords["AUTH"] = tuple(dict.fromkeys(p.upper() for p in keywords["AUTH"]))
        assume(not any(k.startswith("AUTH=") for k in keywords))
        ext = Extensions(domain, keywords)
        reply = ext.to_reply(greeting)
        [received] = ReplyParser().feed(reply.to_bytes(enhanced=False))
        self.assertEqual(parse_ehlo_reply(received), ext)


class ReplyParserProperties(SynchronousTestCase):
    """ReplyParser output: exact for serialised replies, independent of chunking."""

    @FAST
    @given(st.lists(replies(), min_size=1, max_size=4), st.lists(st.integers(0, 10**6)))
    def test_serialised_replies_roundtrip_in_any_chunks(
        self, sent: list[Reply], cuts: list[int]
    ) -> None:
        data = b"".join(r.to_bytes() for r in sent)
        received: list[Reply] = []
        parser = ReplyParser()
        for piece in chunked(data, cuts):
            received.extend(parser.feed(piece))
        self.assertEqual(received, sent)
        self.assertFalse(parser.pending)

    @FAST
    @given(st.integers(200, 559), reply_text.filter(bool), st.integers(1, 2000))
    def test_long_text_wraps_within_limit(self, code: int, word: str, repeat: int) -> None:
        assume((code // 10) % 10 <= 5)
        reply = Reply(code, ((word + " ") * (repeat // len(word) + 1),))
        data = reply.to_bytes()
        for line in data.split(b"\r\n")[:-1]:
            self.assertLessEqual(len(line) + 2, MAX_REPLY_LINE)
        [parsed] = ReplyParser().feed(data)
        self.assertEqual(parsed.code, code)

    @FAST
    @given(
        st.lists(
            st.binary(max_size=40)
            | replies().map(Reply.to_bytes)
            | st.sampled_from([b"250-a\r\n", b"250 b\r\n", b"550 x\r\n", b"\r\n", b"\n"]),
            max_size=8,
        ).map(b"".join),
        st.lists(st.integers(0, 10**6), max_size=8),
    )
    def test_any_bytes_chunking_independent(self, data: bytes, cuts: list[int]) -> None:
        """The replies and the first error do not depend on how the bytes were split."""

        def run(pieces: list[bytes]) -> tuple[list[Reply], str | None]:
            parser = ReplyParser(max_line_length=100, max_lines=5)
            out: list[Reply] = []
            try:
                for piece in pieces:
                    parser.receive(piece)
                    while (reply := parser.next_reply()) is not None:
                        out.append(reply)
            except RemoteProtocolError as e:
                return out, type(e).__name__
            return out, None

        self.assertEqual(run(chunked(data, cuts)), run([data]))
        self.assertEqual(run([bytes([b]) for b in data]), run([data]))


SMTP_ALPHABET = st.sampled_from(
    [
        "<",
        ">",
        "@",
        ".",
        ":",
        "[",
        "]",
        '"',
        "\\",
        ",",
        ";",
        "=",
        "+",
        " ",
        "\t",
        "a",
        "Z",
        "0",
        "9",
        "-",
        "é",
        "\x00",
        "\x7f",
        "FROM:",
        "TO:",
        "SIZE",
        "BODY",
        "ENVID",
        "ORCPT",
        "NOTIFY",
        "AUTH",
        "SMTPUTF8",
        "RET",
        "IPv6:",
        "::1",
        "Postmaster",
        "+2B",
        "LAST",
    ]
)
smtp_text = st.lists(SMTP_ALPHABET, max_size=30).map("".join)


class FuzzTests(SynchronousTestCase):
    """Whatever the peer sends, only the documented errors come out."""

    def assertGoodRefusal(self, error: CommandError) -> None:
        reply = error.reply
        self.assertGreaterEqual(reply.code, 500)
        wire = reply.to_bytes()
        self.assertLessEqual(len(wire), MAX_REPLY_LINE)
        self.assertEqual(ReplyParser().feed(wire), [reply])

    @settings(max_examples=500, deadline=None)
    @given(st.binary(max_size=200) | smtp_text.map(str.encode))
    def test_parse_command(self, line: bytes) -> None:
        try:
            command = parse_command(line)
        except CommandError as e:
            self.assertGoodRefusal(e)
            return
        self.assertTrue(command.verb.isupper())

    @settings(max_examples=500, deadline=None)
    @given(st.text(max_size=120) | smtp_text, st.booleans())
    def test_parse_mail_from_and_rcpt_to(self, argument: str, utf8: bool) -> None:
        for parse in (
            lambda: parse_mail_from(argument, extensions=EXTENSIONS, max_size=10**6),
            lambda: parse_mail_from("FROM:" + argument, extensions=EXTENSIONS),
            lambda: parse_rcpt_to("TO:" + argument, extensions=EXTENSIONS, smtputf8=utf8),
        ):
            try:
                parsed = parse()
            except CommandError as e:
                self.assertGoodRefusal(e)
                continue
            # Whatever was accepted formats back without complaint.
            if isinstance(parsed, MailFrom):
                format_mail_from(parsed.address, parsed.params)
            else:
                format_rcpt_to(parsed.address, parsed.params)

    @FAST
    @given(st.text(max_size=60) | smtp_text)
    def test_small_parsers(self, text: str) -> None:
        for parse in (lambda: parse_bdat(text, max_size=10**9), lambda: parse_auth(text)):
            try:
                parse()
            except CommandError as e:
                self.assertGoodRefusal(e)
        with contextlib.suppress(ValueError):
            xtext_decode(text)
        with contextlib.suppress(AddressError):
            parse_path(text, utf8=True, allow_null=True, allow_postmaster=True)

    @FAST
    @given(st.lists(reply_text, min_size=1, max_size=8))
    def test_parse_ehlo_reply(self, lines: list[str]) -> None:
        extensions = parse_ehlo_reply(Reply(250, tuple(lines)))
        self.assertIsInstance(extensions.auth_mechanisms, frozenset)
        size = extensions.max_size
        self.assertTrue(size is None or size > 0)


def _parse_outcome(line: bytes) -> object:
    try:
        command = parse_command(line)
    except CommandError as e:
        return ("refused", e.reply)
    return (command.verb, command.argument)


_COMMAND_PIECES = st.sampled_from(
    [b"MAIL", b"mail", b"RCPT", b"EHLO", b"DATA", b"QUIT", b"NOOP", b"BDAT", b"XYZZY", b"A" * 21,
     b" ", b"  ", b"\t", b"FROM:<a@b>", b"TO:<c@d>", b"x", b"SIZE=10", b"\xc3\xa9", b"\xff",
     b"\x00", b"\x7f", b"\x1b", b":", b"1000 LAST", b"host.example", b"<>"]
)


class ParseCommandPaths(SynchronousTestCase):
    """parse_command's one-regex path for plain lines agrees with its general path."""

    @given(st.lists(_COMMAND_PIECES, max_size=6).map(b"".join))
    @settings(max_examples=400)
    def test_fast_and_general_paths_agree(self, line: bytes) -> None:
        from netproto_twisted.smtp.wire import _syntax as _wire

        fast = _parse_outcome(line)
        simple = _wire._SIMPLE_COMMAND
        _wire._SIMPLE_COMMAND = re.compile(rb"(?!)")  # never matches: the general path only
        try:
            general = _parse_outcome(line)
        finally:
            _wire._SIMPLE_COMMAND = simple
        self.assertEqual(fast, general)
