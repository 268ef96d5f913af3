"""Tests for netproto_twisted.core.errors."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.errors import (
    ConfigError,
    ErrReplyError,
    LineTooLong,
    LocalProtocolError,
    NetprotoError,
    PermanentError,
    ProtocolError,
    RemoteProtocolError,
    ReplyError,
    TaggedReplyError,
    TemporaryError,
    error_for_code,
)
from netproto_twisted.smtp.errors import SMTPSenderRefused, SMTPServerDisconnected


class ErrorTests(SynchronousTestCase):
    def test_reply_codes(self) -> None:
        err = error_for_code(550, "5.1.1 no such user")
        self.assertIsInstance(err, PermanentError)
        self.assertEqual((err.code, err.text), (550, "5.1.1 no such user"))
        self.assertEqual(str(err), "550 5.1.1 no such user")
        self.assertIsInstance(error_for_code(421, "bye"), TemporaryError)
        plain = error_for_code(221, "bye")
        self.assertIs(type(plain), ProtocolError)
        self.assertIsInstance(plain, NetprotoError)

    def test_config_error_is_one_line(self) -> None:
        self.assertEqual(
            str(ConfigError("smtp.max_size", "expected an integer")),
            "smtp.max_size: expected an integer",
        )
        self.assertEqual(str(ConfigError("", "no such file")), "no such file")


_LINE_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\0"), max_size=30
)
_CODE_ATOM = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters="[]"),
    min_size=1,
    max_size=12,
)


class NumericReplyTests(SynchronousTestCase):
    """SMTP, FTP and NNTP failure replies."""

    def test_to_wire(self) -> None:
        self.assertEqual(PermanentError(550, "no such user").to_wire(), b"550 no such user\r\n")
        self.assertEqual(
            TemporaryError(421, "closing\nsee you").to_wire(), b"421-closing\r\n421 see you\r\n"
        )
        with self.assertRaises(LocalProtocolError):
            PermanentError(550, "smuggled\r\n250 ok").to_wire()
        with self.assertRaises(LocalProtocolError):
            ProtocolError(42, "two digits").to_wire()

    def test_from_wire(self) -> None:
        error = ProtocolError.from_wire(b"550-first\r\n550 second\r\n")
        self.assertIsInstance(error, PermanentError)
        self.assertEqual((error.code, error.text), (550, "first\nsecond"))
        self.assertTrue(error.permanent)
        self.assertFalse(error.temporary)
        nntp = ProtocolError.from_wire("411 no such newsgroup")
        self.assertEqual((nntp.code, nntp.text), (411, "no such newsgroup"))
        self.assertTrue(nntp.temporary)
        # FTP (RFC 959 4.2): continuation lines need not carry the code.
        ftp = ProtocolError.from_wire([b"530-Not logged in", b" 123 a line", b"530 Bye"])
        self.assertEqual(ftp.text, "Not logged in\n 123 a line\nBye")
        self.assertEqual(ProtocolError.from_wire(b"550\r\n").text, "")
        for bad in (b"hello\r\n", b"550-only a continuation\r\n", b"", b"55 x"):
            with self.assertRaises(RemoteProtocolError, msg=bad):
                ProtocolError.from_wire(bad)

    @given(st.integers(100, 599), st.lists(_LINE_TEXT, min_size=1, max_size=4))
    def test_round_trip(self, code: int, lines: list[str]) -> None:
        error = error_for_code(code, "\n".join(lines))
        again = ProtocolError.from_wire(error.to_wire())
        self.assertIs(type(again), type(error))
        self.assertEqual((again.code, again.text), (error.code, error.text))

    def test_smtp_errors_are_reply_errors(self) -> None:
        error = SMTPSenderRefused(550, "5.7.1 refused", "a@example.org")
        self.assertIsInstance(error, ReplyError)
        self.assertIsInstance(error, PermanentError)
        self.assertEqual(error.to_wire(), b"550 5.7.1 refused\r\n")
        self.assertTrue(SMTPServerDisconnected().temporary)


class ErrReplyTests(SynchronousTestCase):
    """POP3's -ERR, with RFC 2449/3206 response codes."""

    def test_to_wire(self) -> None:
        self.assertEqual(ErrReplyError("no such message").to_wire(), b"-ERR no such message\r\n")
        self.assertEqual(
            ErrReplyError("maildrop locked", "in-use").to_wire(),
            b"-ERR [IN-USE] maildrop locked\r\n",
        )
        self.assertEqual(ErrReplyError("", "SYS/TEMP").to_wire(), b"-ERR [SYS/TEMP]\r\n")
        for text, code in (("two\nlines", None), ("x", "BAD CODE"), ("x", "A]B"), ("x", "")):
            with self.assertRaises(LocalProtocolError, msg=(text, code)):
                ErrReplyError(text, code).to_wire()

    def test_from_wire(self) -> None:
        error = ErrReplyError.from_wire(b"-ERR [AUTH] invalid password\r\n")
        self.assertEqual((error.response_code, error.text), ("AUTH", "invalid password"))
        self.assertTrue(error.permanent)
        plain = ErrReplyError.from_wire("-ERR message 7 [deleted] already")
        self.assertEqual((plain.response_code, plain.text), (None, "message 7 [deleted] already"))
        self.assertFalse(plain.temporary or plain.permanent)
        self.assertEqual(str(plain), "-ERR message 7 [deleted] already")
        for bad in (b"+OK fine\r\n", b"", b"-ERRx"):
            with self.assertRaises(RemoteProtocolError, msg=bad):
                ErrReplyError.from_wire(bad)

    def test_temporary_and_permanent(self) -> None:
        for code in ("IN-USE", "LOGIN-DELAY", "SYS/TEMP"):
            self.assertTrue(ErrReplyError("x", code).temporary, code)
            self.assertFalse(ErrReplyError("x", code).permanent, code)
        for code in ("AUTH", "SYS/PERM"):
            self.assertTrue(ErrReplyError("x", code).permanent, code)

    @given(_LINE_TEXT, st.none() | _CODE_ATOM)
    def test_round_trip(self, text: str, code: str | None) -> None:
        text = text.strip(" ")
        if code is None and text.startswith("["):
            text = "x" + text
        error = ErrReplyError(text, code)
        again = ErrReplyError.from_wire(error.to_wire())
        self.assertEqual((again.text, again.response_code), (error.text, error.response_code))


class TaggedReplyTests(SynchronousTestCase):
    """IMAP's NO/BAD/BYE, tagged or untagged, with response codes."""

    def test_to_wire(self) -> None:
        self.assertEqual(
            TaggedReplyError("a1", "no", "no such mailbox", "trycreate").to_wire(),
            b"a1 NO [TRYCREATE] no such mailbox\r\n",
        )
        self.assertEqual(
            TaggedReplyError("*", "BAD", "bad charset", "BADCHARSET", "(UTF-8)").to_wire(),
            b"* BAD [BADCHARSET (UTF-8)] bad charset\r\n",
        )
        self.assertEqual(
            TaggedReplyError("*", "BYE", "shutting down").to_wire(), b"* BYE shutting down\r\n"
        )
        for args in (
            ("a b", "NO", "x"),
            ("a1", "NO", "two\r\nlines"),
            ("a1", "NO", "x", "ALERT", "a]b"),
            ("a1", "NO", "x", "AL ERT"),
        ):
            with self.assertRaises(LocalProtocolError, msg=args):
                TaggedReplyError(*args).to_wire()
        with self.assertRaises(ValueError):
            TaggedReplyError("a1", "OK", "done")
        with self.assertRaises(ValueError):
            TaggedReplyError("a1", "BYE", "tagged BYE")

    def test_from_wire(self) -> None:
        error = TaggedReplyError.from_wire(b"A0042 NO [ALERT] quota nearly full\r\n")
        self.assertEqual(
            (error.tag, error.status, error.response_code, error.code_data, error.text),
            ("A0042", "NO", "ALERT", None, "quota nearly full"),
        )
        self.assertFalse(error.temporary or error.permanent)
        coded = TaggedReplyError.from_wire("* NO [BADCHARSET (UTF-8 US-ASCII)] try these")
        self.assertEqual(
            (coded.response_code, coded.code_data), ("BADCHARSET", "(UTF-8 US-ASCII)")
        )
        bad = TaggedReplyError.from_wire(b"a3 bad command unknown\r\n")
        self.assertEqual((bad.status, bad.text), ("BAD", "command unknown"))
        self.assertTrue(bad.permanent)
        self.assertTrue(TaggedReplyError.from_wire("a4 NO [UNAVAILABLE] later").temporary)
        self.assertEqual(str(bad), "a3 BAD command unknown")
        for line in (b"a1 OK done", b"a1 BYE x", b"a1", b"", b"a(1 NO x"):
            with self.assertRaises(RemoteProtocolError, msg=line):
                TaggedReplyError.from_wire(line)

    @given(
        st.just("*") | st.from_regex(r"[A-Za-z0-9.]{1,8}", fullmatch=True),
        st.sampled_from(["NO", "BAD"]),
        _LINE_TEXT,
        st.none() | _CODE_ATOM,
        st.none() | st.from_regex(r"\([A-Z0-9 -]{1,10}\)", fullmatch=True),
    )
    def test_round_trip(
        self, tag: str, status: str, text: str, code: str | None, data: str | None
    ) -> None:
        text = text.strip(" ")
        if code is None:
            data = None
            if text.startswith("["):
                text = "x" + text
        error = TaggedReplyError(tag, status, text, code, data)
        again = TaggedReplyError.from_wire(error.to_wire())
        self.assertEqual(
            (again.tag, again.status, again.text, again.response_code, again.code_data),
            (error.tag, error.status, error.text, error.response_code, error.code_data),
        )


class FaultTests(SynchronousTestCase):
    """Whose fault: ours (LocalProtocolError) or the peer's (RemoteProtocolError, with a hint)."""

    def test_hint(self) -> None:
        hint = TaggedReplyError("*", "BAD", "line too long")
        error = RemoteProtocolError("line too long", hint=hint)
        self.assertIs(error.hint, hint)
        self.assertEqual(error.args, ("line too long",))
        self.assertIsNone(RemoteProtocolError("x").hint)
        self.assertIsNone(LineTooLong(10).hint)
        self.assertNotIsInstance(error, LocalProtocolError)
        self.assertFalse(issubclass(LocalProtocolError, RemoteProtocolError))
        for cls in (ProtocolError, ErrReplyError, TaggedReplyError):
            self.assertFalse(issubclass(cls, (LocalProtocolError, RemoteProtocolError)), cls)
