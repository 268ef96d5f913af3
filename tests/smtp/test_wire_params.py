"""Tests for addresses, xtext, MAIL/RCPT parameters and the EHLO reply (smtp._address, _params)."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Callable

from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.errors import LocalProtocolError
from netproto_twisted.smtp import (
    AUTH,
    DSN,
    EIGHTBITMIME,
    EXTENSIONS,
    SIZE,
    SMTPUTF8,
    AddressError,
    CommandError,
    Extensions,
    MailFrom,
    RcptTo,
    Reply,
    ReplyParser,
    SMTPHeloError,
    canonical_address,
    format_mail_from,
    format_rcpt_to,
    parse_ehlo_reply,
    parse_mail_from,
    parse_path,
    parse_rcpt_to,
    quote_local_part,
    split_address,
    xtext_decode,
    xtext_encode,
)


def mail(argument: str, **kwargs: object) -> MailFrom:
    """parse_mail_from with every extension advertised unless told otherwise."""
    kwargs.setdefault("extensions", EXTENSIONS)
    return parse_mail_from(argument, **kwargs)  # type: ignore[arg-type]


def rcpt(argument: str, **kwargs: object) -> RcptTo:
    """parse_rcpt_to with every extension advertised and no SMTPUTF8 unless told otherwise."""
    kwargs.setdefault("extensions", EXTENSIONS)
    kwargs.setdefault("smtputf8", False)
    return parse_rcpt_to(argument, **kwargs)  # type: ignore[arg-type]


class AddressTests(SynchronousTestCase):
    """RFC 5321 4.1.2 paths and mailboxes."""

    def test_plain(self) -> None:
        self.assertEqual(parse_path("<user@example.org>"), ("user@example.org", ""))
        self.assertEqual(
            parse_path("<a.b+tag@x.example> SIZE=1"), ("a.b+tag@x.example", " SIZE=1")
        )

    def test_quoted_local_parts(self) -> None:
        self.assertEqual(parse_path('<"john doe"@x.org>')[0], '"john doe"@x.org')
        self.assertEqual(parse_path('<"abc"@x.org>')[0], "abc@x.org")
        self.assertEqual(parse_path('<"a\\bc"@x.org>')[0], "abc@x.org")
        self.assertEqual(parse_path('<"a>b"@x.org>')[0], '"a>b"@x.org')
        self.assertEqual(parse_path('<"a\\"b"@x.org>')[0], '"a\\"b"@x.org')
        self.assertEqual(parse_path('<"a\\\\b"@x.org>')[0], '"a\\\\b"@x.org')
        self.assertEqual(parse_path('<""@x.org>')[0], '""@x.org')
        self.assertEqual(parse_path('<"a@b"@x.org>')[0], '"a@b"@x.org')

    def test_address_literals(self) -> None:
        self.assertEqual(parse_path("<a@[192.0.2.1]>")[0], "a@[192.0.2.1]")
        self.assertEqual(parse_path("<a@[IPv6:2001:db8::1]>")[0], "a@[IPv6:2001:db8::1]")
        self.assertEqual(parse_path("<a@[ipv6:::1]>")[0], "a@[ipv6:::1]")
        self.assertEqual(parse_path("<a@[x-tag:stuff]>")[0], "a@[x-tag:stuff]")
        for bad in (
            "[192.0.2.256]",
            "[1.2.3]",
            "[IPv6:zz::1]",
            "[IPv6:fe80::1%eth0]",
            "[foo]",
            "[x_y:z]",
            "[x:]",
            "[01.2.3.4]",
        ):
            error = self.assertRaises(AddressError, parse_path, f"<a@{bad}>")
            self.assertEqual(error.kind, "syntax")

    def test_source_route_ignored(self) -> None:
        self.assertEqual(parse_path("<@a.example,@b.example:u@c.example>")[0], "u@c.example")
        self.assertRaises(AddressError, parse_path, "<@a.example:@b:u@c>")
        self.assertRaises(AddressError, parse_path, "<@:u@c.example>")

    def test_null_and_postmaster(self) -> None:
        self.assertEqual(parse_path("<>", allow_null=True), ("", ""))
        self.assertRaises(AddressError, parse_path, "<>")
        self.assertEqual(parse_path("<POSTMASTER>", allow_postmaster=True), ("Postmaster", ""))
        self.assertRaises(AddressError, parse_path, "<Postmaster>")
        self.assertEqual(parse_path("<postmaster@x.org>")[0], "postmaster@x.org")

    def test_bare_address_is_lenient_option(self) -> None:
        self.assertEqual(parse_path("u@x.org SIZE=1"), ("u@x.org", " SIZE=1"))
        self.assertRaises(AddressError, parse_path, "u@x.org", allow_bare=False)

    def test_bad_syntax(self) -> None:
        for bad in (
            "",
            "<",
            "<u>",
            "<u@>",
            "<@x>",
            "<u@x",
            "<u@-x.org>",
            "<u@x-.org>",
            "<u@x..org>",
            "<.u@x>",
            "<u.@x>",
            "<u..v@x>",
            "<u v@x>",
            '<"u@x>',
            "<u@x.org.>",
            "<(c)u@x>",
            "<u@x_y.org>",
            '<"a\x01"@x>',
        ):
            error = self.assertRaises(AddressError, parse_path, bad)
            self.assertEqual(error.kind, "syntax", bad)

    def test_lengths(self) -> None:
        label = "a" * 63
        self.assertEqual(parse_path(f"<u@{label}.org>")[0], f"u@{label}.org")
        self.assertEqual(
            self.assertRaises(AddressError, parse_path, f"<u@a{label}.org>").kind, "length"
        )
        long_domain = ".".join(["a" * 50] * 6)
        self.assertEqual(
            self.assertRaises(AddressError, parse_path, f"<u@{long_domain}>").kind, "length"
        )

    def test_utf8(self) -> None:
        self.assertEqual(
            parse_path("<δοκιμή@παράδειγμα.δοκιμή>", utf8=True)[0], "δοκιμή@παράδειγμα.δοκιμή"
        )
        error = self.assertRaises(AddressError, parse_path, "<δοκιμή@x.org>")
        self.assertEqual(error.kind, "non-ascii")
        self.assertEqual(parse_path('<"ü x"@x.org>', utf8=True)[0], '"ü x"@x.org')

    def test_split_address(self) -> None:
        self.assertEqual(split_address("u@x.org"), ("u", "x.org"))
        self.assertEqual(split_address('"a@b c"@x.org'), ("a@b c", "x.org"))
        self.assertEqual(split_address('"a\\"b"@x.org'), ('a"b', "x.org"))
        self.assertEqual(split_address(""), ("", ""))
        self.assertEqual(split_address("Postmaster"), ("Postmaster", ""))
        self.assertEqual(split_address("u@[x:a@b]"), ("u", "[x:a@b]"))

    def test_quote_local_part(self) -> None:
        self.assertEqual(quote_local_part("a.b"), "a.b")
        self.assertEqual(quote_local_part("a b"), '"a b"')
        self.assertEqual(quote_local_part('a"b\\'), '"a\\"b\\\\"')
        self.assertRaises(AddressError, quote_local_part, "a\rb")

    def test_canonical_address(self) -> None:
        self.assertEqual(canonical_address('"abc"@x.org'), "abc@x.org")
        self.assertEqual(canonical_address("", allow_null=True), "")
        self.assertEqual(canonical_address("postmaster", allow_postmaster=True), "Postmaster")
        for bad in ("", "a b@c", "a@b> x", "<a@b>", "a@b\r\n"):
            self.assertRaises(AddressError, canonical_address, bad)


class XtextTests(SynchronousTestCase):
    """RFC 3461 section 4 xtext."""

    def test_encode(self) -> None:
        self.assertEqual(xtext_encode("abc"), "abc")
        self.assertEqual(xtext_encode("a+b=c d"), "a+2Bb+3Dc+20d")
        self.assertEqual(xtext_encode("é"), "+C3+A9")
        self.assertEqual(xtext_encode("\x00\x7f"), "+00+7F")

    def test_decode(self) -> None:
        self.assertEqual(xtext_decode("a+2Bb+3Dc+20d"), "a+b=c d")
        self.assertEqual(xtext_decode("+2b"), "+")
        self.assertEqual(xtext_decode(""), "")
        for bad in ("+", "+2", "+G0", "a=b", "a b", "é", "+FF"):
            self.assertRaises(ValueError, xtext_decode, bad)


class MailFromTests(SynchronousTestCase):
    """parse_mail_from: paths, every parameter, every error reply."""

    def assertRefused(self, parse: Callable[[], object], code: int, enhanced: str) -> str:
        error: CommandError = self.assertRaises(CommandError, parse)
        self.assertEqual((error.reply.code, error.reply.enhanced), (code, enhanced))
        return error.reply.text

    def test_simple(self) -> None:
        self.assertEqual(mail("FROM:<a@b.example>"), MailFrom("a@b.example", {}))
        self.assertEqual(mail("from:<a@b.example>").address, "a@b.example")
        self.assertEqual(mail("FROM: <a@b.example>").address, "a@b.example")
        self.assertEqual(mail("FROM:<>").address, "")
        self.assertEqual(mail("FROM:a@b.example").address, "a@b.example")

    def test_all_parameters(self) -> None:
        parsed = mail(
            "FROM:<a@b.example> SIZE=0123 BODY=8bitmime SMTPUTF8 RET=hdrs ENVID=QQ+2B1 "
            "AUTH=u+40x.example"
        )
        self.assertEqual(parsed.size, 123)
        self.assertEqual(parsed.body, "8BITMIME")
        self.assertTrue(parsed.smtputf8)
        self.assertEqual(parsed.ret, "HDRS")
        self.assertEqual(parsed.envid, "QQ+1")
        self.assertEqual(parsed.auth, "u@x.example")
        self.assertEqual(
            parsed.params,
            {
                "SIZE": "123",
                "BODY": "8BITMIME",
                "SMTPUTF8": None,
                "RET": "HDRS",
                "ENVID": "QQ+1",
                "AUTH": "u@x.example",
            },
        )

    def test_accessors_when_absent(self) -> None:
        parsed = mail("FROM:<a@b.example>")
        self.assertEqual(
            (parsed.size, parsed.body, parsed.smtputf8, parsed.ret, parsed.envid, parsed.auth),
            (None, None, False, None, None, None),
        )

    def test_auth_null(self) -> None:
        self.assertEqual(mail("FROM:<a@b.example> AUTH=<>").auth, "<>")

    def test_missing_from(self) -> None:
        for arg in ("<a@b>", "TO:<a@b>", "FROM <a@b>", ""):
            text = self.assertRefused(lambda a=arg: mail(a), 501, "5.5.4")  # type: ignore[misc]
            self.assertEqual(text, "Syntax: MAIL FROM:<address>")

    def test_bad_sender_syntax(self) -> None:
        for arg in ("FROM:<a b@c>", "FROM:<a@b", "FROM:", "FROM:<Postmaster>", "FROM:<a@b>x"):
            self.assertRaises(CommandError, mail, arg)
        text = self.assertRefused(lambda: mail("FROM:<a b@c>"), 501, "5.1.7")
        self.assertEqual(text, "Bad sender address syntax")
        self.assertRefused(lambda: mail("FROM:<a@b>x"), 501, "5.5.4")

    def test_domain_too_long(self) -> None:
        self.assertRefused(lambda: mail(f"FROM:<a@{'x' * 64}.org>"), 553, "5.1.7")

    def test_utf8_needs_smtputf8(self) -> None:
        self.assertRefused(lambda: mail("FROM:<ü@x.org>"), 553, "5.6.7")
        self.assertEqual(mail("FROM:<ü@x.org> SMTPUTF8").address, "ü@x.org")
        # Not advertised: the parameter itself is refused.
        self.assertRefused(
            lambda: mail("FROM:<ü@x.org> SMTPUTF8", extensions={SIZE}), 555, "5.5.4"
        )

    def test_unknown_and_unadvertised_parameters(self) -> None:
        text = self.assertRefused(lambda: mail("FROM:<a@b> XFOO=1"), 555, "5.5.4")
        self.assertEqual(text, "Unsupported parameter: XFOO")
        self.assertRefused(lambda: mail("FROM:<a@b> NOTIFY=NEVER"), 555, "5.5.4")
        for param, needs in (
            ("SIZE=1", SIZE),
            ("BODY=8BITMIME", EIGHTBITMIME),
            ("RET=FULL", DSN),
            ("ENVID=x", DSN),
            ("AUTH=<>", AUTH),
            ("SMTPUTF8", SMTPUTF8),
        ):
            others = EXTENSIONS - {needs}
            self.assertRefused(
                lambda p=param, o=others: mail(f"FROM:<a@b> {p}", extensions=o),  # type: ignore[misc]
                555,
                "5.5.4",
            )
            mail(f"FROM:<a@b> {param}", extensions={needs})

    def test_binarymime_needs_its_keyword(self) -> None:
        self.assertEqual(mail("FROM:<a@b> BODY=BINARYMIME").body, "BINARYMIME")
        self.assertRefused(
            lambda: mail("FROM:<a@b> BODY=BINARYMIME", extensions={EIGHTBITMIME}), 555, "5.5.4"
        )

    def test_duplicate_parameter(self) -> None:
        text = self.assertRefused(lambda: mail("FROM:<a@b> SIZE=1 size=2"), 555, "5.5.4")
        self.assertEqual(text, "Duplicate parameter: SIZE")

    def test_bad_values(self) -> None:
        for param in (
            "SIZE=x",
            "SIZE=",
            "SIZE",
            "SIZE=-1",
            "SIZE=" + "9" * 21,
            "BODY=9BIT",
            "BODY",
            "SMTPUTF8=yes",
            "RET=ALL",
            "ENVID",
            "ENVID=+4",
            "ENVID=+0D",
            "ENVID=" + "x" * 101,
            "ENVID=+C3+BC",
            "AUTH=x",
            "AUTH",
            "AUTH=a+20b@c",
            "=1",
            "-X=1",
            "SIZE==1",
            "SIZE=1=2",
        ):
            self.assertRaises(CommandError, mail, f"FROM:<a@b.example> {param}")
        text = self.assertRefused(lambda: mail("FROM:<a@b> BODY=9BIT"), 501, "5.5.4")
        self.assertEqual(text, "Bad BODY parameter")
        self.assertEqual(mail("FROM:<a@b> ENVID=" + "x" * 100).envid, "x" * 100)

    def test_blanks_between_parameters(self) -> None:
        self.assertEqual(
            mail("FROM:<a@b>  SIZE=1\tBODY=7BIT ").params, {"SIZE": "1", "BODY": "7BIT"}
        )

    def test_size_limit(self) -> None:
        self.assertEqual(mail("FROM:<a@b> SIZE=100", max_size=100).size, 100)
        self.assertRefused(lambda: mail("FROM:<a@b> SIZE=101", max_size=100), 552, "5.3.4")
        self.assertEqual(mail("FROM:<a@b>", max_size=100).size, None)


class RcptToTests(SynchronousTestCase):
    """parse_rcpt_to."""

    def test_simple(self) -> None:
        self.assertEqual(rcpt("TO:<u@x.org>"), RcptTo("u@x.org", {}))
        self.assertEqual(rcpt("to: <u@x.org>").address, "u@x.org")

    def test_postmaster(self) -> None:
        for arg in ("TO:<Postmaster>", "TO:<postmaster>", "TO:<POSTMASTER>"):
            parsed = rcpt(arg)
            self.assertEqual(parsed.address, "Postmaster")
            self.assertTrue(parsed.is_postmaster)
        self.assertFalse(rcpt("TO:<postmaster@x.org>").is_postmaster)

    def test_dsn_parameters(self) -> None:
        parsed = rcpt("TO:<u@x.org> NOTIFY=success,Delay ORCPT=rfc822;u+2Bx+40x.org")
        self.assertEqual(parsed.notify, ("SUCCESS", "DELAY"))
        self.assertEqual(parsed.orcpt, ("rfc822", "u+x@x.org"))
        self.assertEqual(rcpt("TO:<u@x.org> NOTIFY=NEVER").notify, ("NEVER",))
        self.assertEqual((rcpt("TO:<u@x.org>").notify, rcpt("TO:<u@x.org>").orcpt), (None, None))

    def test_bad_dsn_parameters(self) -> None:
        for param in (
            "NOTIFY=NEVER,SUCCESS",
            "NOTIFY=SUCCESS,SUCCESS",
            "NOTIFY=",
            "NOTIFY=X",
            "NOTIFY",
            "ORCPT=rfc822",
            "ORCPT=;a",
            "ORCPT=rfc822;",
            "ORCPT=rfc822;+0A",
            "ORCPT=rfc822;" + "a" * 500,
        ):
            error = self.assertRaises(CommandError, rcpt, f"TO:<u@x.org> {param}")
            self.assertEqual(error.reply.code, 501, param)
        error = self.assertRaises(
            CommandError, rcpt, "TO:<u@x.org> NOTIFY=NEVER", extensions=set()
        )
        self.assertEqual(error.reply.code, 555)
        error = self.assertRaises(CommandError, rcpt, "TO:<u@x.org> SIZE=1")
        self.assertEqual(error.reply.code, 555)

    def test_errors(self) -> None:
        error = self.assertRaises(CommandError, rcpt, "<u@x.org>")
        self.assertEqual(str(error.reply), "501 5.5.4 Syntax: RCPT TO:<address>")
        error = self.assertRaises(CommandError, rcpt, "TO:<u x.org>")
        self.assertEqual(str(error.reply), "501 5.1.3 Bad recipient address syntax")
        error = self.assertRaises(CommandError, rcpt, "TO:<>")
        self.assertEqual((error.reply.code, error.reply.enhanced), (501, "5.1.3"))
        error = self.assertRaises(CommandError, rcpt, f"TO:<u@{'x' * 64}.org>")
        self.assertEqual((error.reply.code, error.reply.enhanced), (553, "5.1.3"))

    def test_utf8_only_in_smtputf8_transaction(self) -> None:
        error = self.assertRaises(CommandError, rcpt, "TO:<ü@x.org>")
        self.assertEqual((error.reply.code, error.reply.enhanced), (553, "5.6.7"))
        self.assertEqual(rcpt("TO:<ü@x.org>", smtputf8=True).address, "ü@x.org")


class FormatTests(SynchronousTestCase):
    """Client-side MAIL/RCPT formatting."""

    def test_mail_from(self) -> None:
        self.assertEqual(format_mail_from("a@b.example"), b"MAIL FROM:<a@b.example>\r\n")
        self.assertEqual(format_mail_from(""), b"MAIL FROM:<>\r\n")
        self.assertEqual(format_mail_from('"x"@b.example'), b"MAIL FROM:<x@b.example>\r\n")
        self.assertEqual(
            format_mail_from(
                "a@b",
                {"size": 10, "BODY": "8bitmime", "ENVID": "a b+", "AUTH": "<>", "RET": "full"},
            ),
            b"MAIL FROM:<a@b> SIZE=10 BODY=8BITMIME ENVID=a+20b+2B AUTH=<> RET=FULL\r\n",
        )

    def test_unknown_parameters_passed_as_given(self) -> None:
        self.assertEqual(
            format_mail_from("a@b", {"X-FOO": "bar", "XBARE": None}),
            b"MAIL FROM:<a@b> X-FOO=bar XBARE\r\n",
        )
        self.assertRaises(LocalProtocolError, format_mail_from, "a@b", {"X": "a=b"})
        self.assertRaises(LocalProtocolError, format_mail_from, "a@b", {"X": "a b"})
        self.assertRaises(LocalProtocolError, format_mail_from, "a@b", {"X Y": "1"})
        self.assertRaises(LocalProtocolError, format_mail_from, "a@b", {"X": "1", "x": "2"})

    def test_rcpt_to(self) -> None:
        self.assertEqual(format_rcpt_to("Postmaster"), b"RCPT TO:<Postmaster>\r\n")
        self.assertEqual(
            format_rcpt_to("u@x", {"NOTIFY": "failure,delay", "ORCPT": "rfc822;u+1@x"}),
            b"RCPT TO:<u@x> NOTIFY=FAILURE,DELAY ORCPT=rfc822;u+2B1@x\r\n",
        )
        self.assertRaises(LocalProtocolError, format_rcpt_to, "")
        self.assertRaises(LocalProtocolError, format_rcpt_to, "u@x", {"NOTIFY": "NEVER,DELAY"})

    def test_injection_refused(self) -> None:
        for address in ("a@b>\r\nRCPT TO:<c@d", "a@b\n", "a\x00@b", "a@b> SIZE=1"):
            self.assertRaises(LocalProtocolError, format_mail_from, address)
            self.assertRaises(LocalProtocolError, format_rcpt_to, address)
        for value in ("x\r\nQUIT", "x\n", "x\x00"):
            self.assertRaises(LocalProtocolError, format_mail_from, "a@b", {"ENVID": value})
            self.assertRaises(LocalProtocolError, format_mail_from, "a@b", {"XFOO": value})
            self.assertRaises(
                LocalProtocolError, format_rcpt_to, "a@b", {"ORCPT": "rfc822;" + value}
            )

    def test_length_limits(self) -> None:
        self.assertIn(b"ENVID=" + b"+20" * 33, format_mail_from("a@b", {"ENVID": " " * 33}))
        self.assertRaises(LocalProtocolError, format_mail_from, "a@b", {"ENVID": " " * 34})
        format_rcpt_to("a@b", {"ORCPT": "rfc822;" + "x" * 493})
        self.assertRaises(
            LocalProtocolError, format_rcpt_to, "a@b", {"ORCPT": "rfc822;" + "x" * 494}
        )

    def test_non_ascii_needs_smtputf8(self) -> None:
        self.assertRaises(LocalProtocolError, format_mail_from, "ü@x.org")
        self.assertEqual(
            format_mail_from("ü@x.org", {"SMTPUTF8": None}),
            "MAIL FROM:<ü@x.org> SMTPUTF8\r\n".encode(),
        )
        self.assertEqual(format_rcpt_to("ü@x.org"), "RCPT TO:<ü@x.org>\r\n".encode())


class EhloReplyTests(SynchronousTestCase):
    """parse_ehlo_reply and Extensions."""

    def test_parse(self) -> None:
        reply = Reply(
            250,
            (
                "mx.example greets you",
                "PIPELINING",
                "SIZE 10240000",
                "auth PLAIN login",
                "8BITMIME",
                "STARTTLS",
                "X-WEIRD a b",
            ),
        )
        ext = parse_ehlo_reply(reply)
        self.assertEqual(ext.domain, "mx.example")
        self.assertTrue(ext.has("PIPELINING"))
        self.assertTrue(ext.has("pipelining"))
        self.assertTrue(ext.has(EIGHTBITMIME))
        self.assertFalse(ext.has("CHUNKING"))
        self.assertEqual(ext.max_size, 10240000)
        self.assertEqual(ext.auth_mechanisms, frozenset({"PLAIN", "LOGIN"}))
        self.assertEqual(ext.params("x-weird"), ("a", "b"))
        self.assertEqual(ext.params("CHUNKING"), ())

    def test_server_name_that_looks_like_an_enhanced_code(self) -> None:
        # The reply parser takes "2.0.0" for an enhanced status code; in an
        # EHLO reply (which has none) it is the server's name.
        [reply] = ReplyParser().feed(b"250-2.0.0 Hello\r\n250 SIZE 10\r\n")
        ext = parse_ehlo_reply(reply)
        self.assertEqual(ext.domain, "2.0.0")
        self.assertEqual(ext.keywords, {"SIZE": ("10",)})

    def test_obsolete_auth_equals(self) -> None:
        ext = parse_ehlo_reply(Reply(250, ("mx", "AUTH=LOGIN PLAIN", "AUTH CRAM-MD5 PLAIN")))
        self.assertEqual(ext.auth_mechanisms, frozenset({"LOGIN", "PLAIN", "CRAM-MD5"}))
        self.assertEqual(ext.params(AUTH), ("LOGIN", "PLAIN", "CRAM-MD5"))

    def test_size_without_limit(self) -> None:
        self.assertIsNone(parse_ehlo_reply(Reply(250, ("mx", "SIZE"))).max_size)
        self.assertIsNone(parse_ehlo_reply(Reply(250, ("mx", "SIZE 0"))).max_size)
        self.assertIsNone(parse_ehlo_reply(Reply(250, ("mx", "SIZE lots"))).max_size)
        self.assertTrue(parse_ehlo_reply(Reply(250, ("mx", "SIZE"))).has(SIZE))

    def test_malformed_lines_ignored(self) -> None:
        ext = parse_ehlo_reply(Reply(250, ("", "", "-BAD", "GOOD", "=x")))
        self.assertEqual(dict(ext.keywords), {"GOOD": ()})
        self.assertEqual(ext.domain, "")

    def test_refusal_raises(self) -> None:
        error = self.assertRaises(SMTPHeloError, parse_ehlo_reply, Reply(502, ("no EHLO",)))
        self.assertEqual(error.code, 502)

    def test_to_reply(self) -> None:
        ext = Extensions("mx.example", {"PIPELINING": (), "SIZE": ("1000",), AUTH: ("PLAIN",)})
        reply = ext.to_reply("ESMTP ready")
        self.assertEqual(
            reply.to_bytes(enhanced=False),
            b"250-mx.example ESMTP ready\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 AUTH PLAIN\r\n",
        )
        self.assertEqual(parse_ehlo_reply(reply), ext)
        self.assertEqual(Extensions("mx").to_reply().lines, ("mx",))

    def test_to_reply_refuses_malformed(self) -> None:
        for ext in (
            Extensions("", {}),
            Extensions("a b", {}),
            Extensions("mx", {"size": ()}),
            Extensions("mx", {"X Y": ()}),
            Extensions("mx", {"SIZE": ("1 2",)}),
            Extensions("mx", {"SIZE": ("",)}),
        ):
            self.assertRaises(LocalProtocolError, ext.to_reply)

    def test_empty(self) -> None:
        self.assertFalse(Extensions().has(SIZE))
        self.assertEqual(Extensions().auth_mechanisms, frozenset())
