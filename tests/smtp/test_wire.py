"""Tests for netproto_twisted.smtp.wire._syntax: replies, command parsing and formatting."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.errors import (
    LineTooLong,
    LocalProtocolError,
    PermanentError,
    RemoteProtocolError,
    TemporaryError,
)
from netproto_twisted.core.framing import BareLineEnding, LineEndings
from netproto_twisted.smtp import (
    CLOSING,
    COMMANDS,
    ES_BAD_DEST_MAILBOX,
    ES_INVALID_ARGUMENTS,
    MAX_REPLY_LINE,
    OK,
    Command,
    CommandError,
    Reply,
    ReplyParser,
    SMTPDataError,
    SMTPResponseError,
    SMTPSenderRefused,
    error_from_reply,
    format_auth,
    format_bdat,
    format_command,
    format_ehlo,
    format_helo,
    parse_auth,
    parse_bdat,
    parse_command,
)


def wire_lines(data: bytes) -> list[bytes]:
    """Split serialised replies into lines, checking each ends with CRLF."""
    assert data.endswith(b"\r\n")
    return data[:-2].split(b"\r\n")


class ReplyTests(SynchronousTestCase):
    """Reply construction, serialisation and conversion to errors."""

    def test_make_puts_class_digit_on_status(self) -> None:
        reply = Reply.make(550, "no such user", ES_BAD_DEST_MAILBOX)
        self.assertEqual(reply, Reply(550, ("no such user",), "5.1.1"))
        self.assertEqual(Reply.make(450, "busy", "2.1").enhanced, "4.2.1")

    def test_make_splits_text_on_newlines(self) -> None:
        self.assertEqual(Reply.make(OK, "a\nb").lines, ("a", "b"))
        self.assertEqual(Reply.make(OK, ["x", "y"]).lines, ("x", "y"))
        self.assertEqual(Reply.make(OK).lines, ("",))
        self.assertEqual(Reply.make(OK, []).lines, ("",))

    def test_invalid_codes_refused(self) -> None:
        for code in (199, 600, 260, 0, 1000, 361):
            self.assertRaises(LocalProtocolError, Reply, code, ("x",))

    def test_enhanced_must_match_class(self) -> None:
        self.assertRaises(LocalProtocolError, Reply, 550, ("x",), "4.1.1")
        self.assertRaises(LocalProtocolError, Reply, 354, ("x",), "3.0.0")
        self.assertRaises(LocalProtocolError, Reply, 250, ("x",), "2.0")
        self.assertRaises(LocalProtocolError, Reply.make, 250, "x", "1")
        self.assertRaises(LocalProtocolError, Reply.make, 250, "x", "2.0.0")

    def test_no_injection_through_text(self) -> None:
        for text in ("a\rb", "a\x00b"):
            self.assertRaises(LocalProtocolError, Reply, 250, (text,))
        self.assertRaises(LocalProtocolError, Reply, 250, ("a", "b\r\n250 x"))
        self.assertRaises(LocalProtocolError, Reply, 250, ())
        self.assertRaises(LocalProtocolError, Reply, 250, ["list"])

    def test_single_line(self) -> None:
        self.assertEqual(Reply(OK, ("ok",)).to_bytes(), b"250 ok\r\n")
        self.assertEqual(Reply(OK, ("",)).to_bytes(), b"250\r\n")
        self.assertEqual(Reply(OK, ("",), "2.0.0").to_bytes(), b"250 2.0.0\r\n")

    def test_multi_line_prefixes_enhanced_on_every_line(self) -> None:
        reply = Reply.make(550, "one\ntwo", ES_BAD_DEST_MAILBOX)
        self.assertEqual(reply.to_bytes(), b"550-5.1.1 one\r\n550 5.1.1 two\r\n")
        self.assertEqual(reply.to_bytes(enhanced=False), b"550-one\r\n550 two\r\n")

    def test_empty_continuation_line(self) -> None:
        self.assertEqual(Reply(OK, ("", "x")).to_bytes(), b"250-\r\n250 x\r\n")

    def test_long_text_split_at_spaces(self) -> None:
        words = " ".join(f"word{i:04d}" for i in range(200))
        data = Reply.make(550, words, "7.1").to_bytes()
        lines = wire_lines(data)
        self.assertGreater(len(lines), 1)
        for line in lines:
            self.assertLessEqual(len(line) + 2, MAX_REPLY_LINE)
            self.assertTrue(line.startswith((b"550-5.7.1 ", b"550 5.7.1 ")))
        self.assertTrue(lines[-1].startswith(b"550 "))
        self.assertTrue(all(line.startswith(b"550-") for line in lines[:-1]))
        rejoined = " ".join(line[10:].decode() for line in lines)
        self.assertEqual(rejoined, words)

    def test_long_word_split_hard_on_utf8_boundary(self) -> None:
        text = "é" * 600  # 1200 bytes, no spaces
        lines = wire_lines(Reply(OK, (text,)).to_bytes())
        self.assertTrue(all(len(line) + 2 <= MAX_REPLY_LINE for line in lines))
        self.assertEqual("".join(line[4:].decode("utf-8") for line in lines), text)

    def test_exactly_max_length_not_split(self) -> None:
        text = "x" * (MAX_REPLY_LINE - 6)
        self.assertEqual(len(wire_lines(Reply(OK, (text,)).to_bytes())), 1)
        self.assertEqual(len(wire_lines(Reply(OK, (text + "x",)).to_bytes())), 2)

    def test_text_properties(self) -> None:
        reply = Reply.make(550, "a\nb", "1.1")
        self.assertEqual(reply.text, "a\nb")
        self.assertEqual(reply.status_text, "5.1.1 a\nb")
        self.assertEqual(str(reply), "550 5.1.1 a\nb")
        self.assertEqual(Reply(250, ("",), "2.0.0").status_text, "2.0.0")
        self.assertEqual(Reply(250, ("x",)).status_text, "x")

    def test_classification(self) -> None:
        self.assertTrue(Reply(354, ("go",)).positive)
        self.assertTrue(Reply(451, ("x",)).temporary)
        self.assertFalse(Reply(451, ("x",)).permanent)
        self.assertTrue(Reply(554, ("x",)).permanent)
        self.assertFalse(Reply(554, ("x",)).positive)

    def test_raise_for_status(self) -> None:
        ok = Reply(OK, ("ok",))
        self.assertIs(ok.raise_for_status(), ok)
        go = Reply(354, ("go",))
        self.assertIs(go.raise_for_status(), go)
        failure = Reply.make(552, "too big", "3.4")
        error = self.assertRaises(SMTPResponseError, failure.raise_for_status)
        self.assertIsInstance(error, PermanentError)
        self.assertEqual((error.code, error.text), (552, "5.3.4 too big"))
        self.assertIs(error.reply, failure)
        later = Reply(451, ("later",))
        temp = self.assertRaises(SMTPDataError, later.raise_for_status, SMTPDataError)
        self.assertIsInstance(temp, TemporaryError)

    def test_error_from_reply_with_extra_arguments(self) -> None:
        reply = Reply.make(553, "bad sender", "1.7")
        error = error_from_reply(reply, SMTPSenderRefused, sender="a@b.example")
        self.assertIsInstance(error, SMTPSenderRefused)
        self.assertIsInstance(error, PermanentError)
        assert isinstance(error, SMTPSenderRefused)
        self.assertEqual(error.sender, "a@b.example")
        self.assertEqual(str(error), "553 5.1.7 bad sender")


class ReplyParserTests(SynchronousTestCase):
    """ReplyParser: streaming client-side reply parsing."""

    def test_single_and_pipelined(self) -> None:
        parser = ReplyParser()
        replies = parser.feed(b"250 ok\r\n354 go ahead\r\n221 bye\r\n")
        self.assertEqual([r.code for r in replies], [250, 354, CLOSING])
        self.assertEqual(replies[1].lines, ("go ahead",))

    def test_multi_line_in_pieces(self) -> None:
        parser = ReplyParser()
        self.assertEqual(parser.feed(b"250-mx.exa"), [])
        self.assertTrue(parser.pending)
        self.assertEqual(parser.feed(b"mple\r\n250-SIZE 10\r\n"), [])
        self.assertTrue(parser.pending)
        replies = parser.feed(b"250 8BITMIME\r\n")
        self.assertEqual(replies, [Reply(250, ("mx.example", "SIZE 10", "8BITMIME"))])
        self.assertFalse(parser.pending)

    def test_code_only_line(self) -> None:
        self.assertEqual(ReplyParser().feed(b"250\r\n"), [Reply(250, ("",))])
        self.assertEqual(ReplyParser().feed(b"250-\r\n250 x\r\n"), [Reply(250, ("", "x"))])

    def test_enhanced_status_extracted(self) -> None:
        [reply] = ReplyParser().feed(b"550-5.1.1 no such\r\n550 5.1.1 user here\r\n")
        self.assertEqual(reply, Reply(550, ("no such", "user here"), "5.1.1"))
        [reply] = ReplyParser().feed(b"250 2.0.0\r\n")
        self.assertEqual(reply, Reply(250, ("",), "2.0.0"))

    def test_enhanced_of_other_class_is_text(self) -> None:
        [reply] = ReplyParser().feed(b"550 4.1.1 odd\r\n")
        self.assertEqual(reply, Reply(550, ("4.1.1 odd",)))
        [reply] = ReplyParser().feed(b"220 1.2.3.4 ready\r\n")
        self.assertIsNone(reply.enhanced)
        [reply] = ReplyParser().feed(b"250 2.0.0x\r\n")
        self.assertIsNone(reply.enhanced)

    def test_enhanced_only_on_first_line(self) -> None:
        [reply] = ReplyParser().feed(b"550-5.7.1 first\r\n550 second\r\n")
        self.assertEqual(reply.lines, ("first", "second"))
        self.assertEqual(reply.enhanced, "5.7.1")

    def test_bare_lf_accepted_by_default_and_refused_strictly(self) -> None:
        self.assertEqual(ReplyParser().feed(b"250 ok\n"), [Reply(250, ("ok",))])
        strict = ReplyParser(endings=LineEndings.STRICT)
        self.assertRaises(BareLineEnding, strict.feed, b"250 ok\n")

    def test_non_utf8_replaced(self) -> None:
        [reply] = ReplyParser().feed(b"220 caf\xe9\r\n")
        self.assertEqual(reply.lines, ("caf\ufffd",))

    def test_control_characters_in_text_do_not_break_the_model(self) -> None:
        [reply] = ReplyParser().feed(b"250 a\x00b\r\n")
        self.assertEqual(reply.lines, ("a\ufffdb",))
        self.assertEqual(reply.to_bytes(), "250 a\ufffdb\r\n".encode())

    def test_malformed_lines(self) -> None:
        for data in (
            b"25\r\n",
            b"ok\r\n",
            b"2500 x\r\n",
            b"250_x\r\n",
            b"199 x\r\n",
            b"600 x\r\n",
            b"260 x\r\n",
            b"\r\n",
            b"abc def\r\n",
        ):
            self.assertRaises(RemoteProtocolError, ReplyParser().feed, data)

    def test_code_change_within_reply(self) -> None:
        self.assertRaises(RemoteProtocolError, ReplyParser().feed, b"250-a\r\n550 b\r\n")

    def test_too_many_lines(self) -> None:
        parser = ReplyParser(max_lines=3)
        self.assertEqual(len(parser.feed(b"250-a\r\n250-b\r\n250 c\r\n")), 1)
        four = b"250-a\r\n250-b\r\n250-c\r\n250 d\r\n"
        self.assertRaises(RemoteProtocolError, parser.feed, four)

    def test_line_too_long(self) -> None:
        parser = ReplyParser(max_line_length=20)
        self.assertEqual(len(parser.feed(b"250 " + b"x" * 16 + b"\r\n")), 1)
        self.assertRaises(LineTooLong, parser.feed, b"250 " + b"x" * 17 + b"\r\n")
        # Detected before the line ends: memory stays bounded.
        self.assertRaises(LineTooLong, ReplyParser(max_line_length=20).feed, b"250 " + b"x" * 50)

    def test_next_reply_returns_replies_before_an_error(self) -> None:
        parser = ReplyParser()
        parser.receive(b"250 ok\r\n354 go\r\nbad line\r\n250 never\r\n")
        self.assertEqual(parser.next_reply(), Reply(250, ("ok",)))
        self.assertEqual(parser.next_reply(), Reply(354, ("go",)))
        self.assertRaises(RemoteProtocolError, parser.next_reply)

    def test_next_reply_needs_more(self) -> None:
        parser = ReplyParser()
        self.assertIsNone(parser.next_reply())
        parser.receive(b"250-a\r\n250 b")
        self.assertIsNone(parser.next_reply())
        parser.receive(b"\r\n")
        self.assertEqual(parser.next_reply(), Reply(250, ("a", "b")))
        self.assertIsNone(parser.next_reply())

    def test_roundtrip_of_serialised_reply(self) -> None:
        reply = Reply.make(550, "line one\nline two", "7.1")
        self.assertEqual(ReplyParser().feed(reply.to_bytes()), [reply])


class ParseCommandTests(SynchronousTestCase):
    """parse_command: verbs, arguments and the errors' replies."""

    def assertRefused(self, line: bytes, code: int, enhanced: str) -> CommandError:
        error: CommandError = self.assertRaises(CommandError, parse_command, line)
        self.assertEqual((error.reply.code, error.reply.enhanced), (code, enhanced))
        self.assertEqual(error.code, code)
        self.assertIsInstance(error, RemoteProtocolError)
        return error

    def test_verbs_case_insensitive(self) -> None:
        self.assertEqual(parse_command(b"ehlo client.example"), Command("EHLO", "client.example"))
        self.assertEqual(parse_command(b"QuIt"), Command("QUIT", ""))
        self.assertEqual(
            parse_command(b"MAIL FROM:<a@b.example> SIZE=10"),
            Command("MAIL", "FROM:<a@b.example> SIZE=10"),
        )

    def test_every_known_verb(self) -> None:
        for verb in COMMANDS:
            bare = verb in ("DATA", "RSET", "QUIT", "STARTTLS")
            line = verb.encode() + (b"" if bare else b" x")
            self.assertEqual(parse_command(line).verb, verb)

    def test_blanks_tolerated(self) -> None:
        self.assertEqual(parse_command(b"NOOP  "), Command("NOOP", ""))
        self.assertEqual(parse_command(b"RCPT\tTO:<a@b>"), Command("RCPT", "TO:<a@b>"))
        self.assertEqual(parse_command(b"HELP  mail "), Command("HELP", "mail"))

    def test_unknown_verb(self) -> None:
        error = self.assertRefused(b"XYZZY", 500, "5.5.1")
        self.assertEqual(error.reply.text, "Command unrecognized")
        self.assertRefused(b"", 500, "5.5.1")
        self.assertRefused(b"TURN", 500, "5.5.1")
        self.assertRefused(b"MAIL1 x", 500, "5.5.1")
        self.assertRefused(b"\xff\xfe", 500, "5.5.1")

    def test_custom_verb_set(self) -> None:
        self.assertEqual(parse_command(b"LHLO x", verbs={"LHLO"}), Command("LHLO", "x"))
        self.assertRaises(CommandError, parse_command, b"EHLO x", verbs={"LHLO"})

    def test_control_characters(self) -> None:
        self.assertRefused(b"NOOP \x00", 500, "5.5.2")
        self.assertRefused(b"MAIL FROM:<a@b>\x1b", 500, "5.5.2")
        self.assertRefused(b"NOOP \x7f", 500, "5.5.2")

    def test_invalid_utf8_argument(self) -> None:
        self.assertRefused(b"MAIL FROM:<\xff@x>", 500, "5.5.2")

    def test_arguments_forbidden(self) -> None:
        for verb in (b"DATA", b"RSET", b"QUIT", b"STARTTLS"):
            error = self.assertRefused(verb + b" x", 501, "5.5.4")
            self.assertIn(verb.decode(), error.reply.text)

    def test_arguments_required(self) -> None:
        for verb in (b"EHLO", b"HELO", b"MAIL", b"RCPT", b"BDAT", b"VRFY", b"EXPN", b"AUTH"):
            self.assertRefused(verb, 501, "5.5.4")
            self.assertRefused(verb + b"   ", 501, "5.5.4")

    def test_ehlo_argument_is_one_ascii_word(self) -> None:
        self.assertEqual(parse_command(b"EHLO [IPv6:::1]").argument, "[IPv6:::1]")
        self.assertRefused(b"EHLO two words", 501, "5.5.4")
        self.assertRefused("EHLO héllo".encode(), 501, "5.5.4")


class BdatAuthTests(SynchronousTestCase):
    """parse_bdat and parse_auth."""

    def test_bdat(self) -> None:
        self.assertEqual(parse_bdat("100"), (100, False))
        self.assertEqual(parse_bdat("0 LAST"), (0, True))
        self.assertEqual(parse_bdat("007 last"), (7, True))
        self.assertEqual(parse_bdat("5  LAST "), (5, True))

    def test_bdat_syntax(self) -> None:
        for arg in ("", "x", "-1", "1 FIRST", "1LAST", "1.5", "9" * 21, "1 LAST x"):
            error = self.assertRaises(CommandError, parse_bdat, arg)
            self.assertEqual(str(error.reply), "501 5.5.4 Syntax: BDAT chunk-size [LAST]")

    def test_bdat_size_bound(self) -> None:
        self.assertEqual(parse_bdat("1000", max_size=1000), (1000, False))
        error = self.assertRaises(CommandError, parse_bdat, "1001", max_size=1000)
        self.assertEqual((error.reply.code, error.reply.enhanced), (552, "5.3.4"))

    def test_auth(self) -> None:
        self.assertEqual(parse_auth("plain"), ("PLAIN", None))
        self.assertEqual(parse_auth("PLAIN AGFAYg=="), ("PLAIN", "AGFAYg=="))
        self.assertEqual(parse_auth("PLAIN ="), ("PLAIN", "="))
        self.assertEqual(parse_auth("SCRAM-SHA-256 biwsbj11"), ("SCRAM-SHA-256", "biwsbj11"))

    def test_auth_syntax_does_not_echo_blob(self) -> None:
        for arg in ("", "PL@IN", "PLAIN sec ret", "PLAIN s3cr*t", "A" * 21):
            error = self.assertRaises(CommandError, parse_auth, arg)
            self.assertEqual(error.reply.code, 501)
            self.assertEqual(error.reply.enhanced, "5." + ES_INVALID_ARGUMENTS)
            self.assertNotIn("sec", error.reply.text)


class FormatCommandTests(SynchronousTestCase):
    """Client-side command formatting refuses injection."""

    def test_format(self) -> None:
        self.assertEqual(format_command("NOOP"), b"NOOP\r\n")
        self.assertEqual(format_command("VRFY", "user"), b"VRFY user\r\n")
        self.assertEqual(format_ehlo("client.example"), b"EHLO client.example\r\n")
        self.assertEqual(format_helo("[127.0.0.1]"), b"HELO [127.0.0.1]\r\n")
        self.assertEqual(format_bdat(10), b"BDAT 10\r\n")
        self.assertEqual(format_bdat(0, last=True), b"BDAT 0 LAST\r\n")
        self.assertEqual(format_auth("plain"), b"AUTH PLAIN\r\n")
        self.assertEqual(format_auth("PLAIN", b"\x00a\x00b"), b"AUTH PLAIN AGEAYg==\r\n")
        self.assertEqual(format_auth("EXTERNAL", b""), b"AUTH EXTERNAL =\r\n")

    def test_injection_refused(self) -> None:
        for arg in ("a\r\nRCPT TO:<x@y>", "a\nb", "a\rb", "a\x00b"):
            self.assertRaises(LocalProtocolError, format_command, "VRFY", arg)
            self.assertRaises(LocalProtocolError, format_ehlo, arg)
            self.assertRaises(LocalProtocolError, format_helo, arg)
        self.assertRaises(LocalProtocolError, format_command, "NO OP")
        self.assertRaises(LocalProtocolError, format_command, "")
        self.assertRaises(LocalProtocolError, format_ehlo, "")
        self.assertRaises(LocalProtocolError, format_ehlo, "a b")
        self.assertRaises(LocalProtocolError, format_bdat, -1)
        self.assertRaises(LocalProtocolError, format_auth, "PLAIN\r\nQUIT")

    def test_formatted_commands_parse_back(self) -> None:
        ehlo = parse_command(format_ehlo("x.example")[:-2])
        self.assertEqual(ehlo, Command("EHLO", "x.example"))
        bdat = parse_command(format_bdat(42, last=True)[:-2])
        self.assertEqual(parse_bdat(bdat.argument), (42, True))
        auth = parse_command(format_auth("LOGIN", b"u")[:-2])
        self.assertEqual(parse_auth(auth.argument), ("LOGIN", "dQ=="))
