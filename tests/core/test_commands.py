"""core.commands: the declarative command table, shown with a toy POP3 table and SMTP's."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.commands import Argument, Command, CommandTable, Refusal, RefusalKind
from netproto_twisted.smtp import SMTP_COMMANDS, State

AUTHORIZATION, TRANSACTION, UPDATE = "authorization", "transaction", "update"


class Pop3:
    """A toy POP3 session: what a handler receives, and a few facts for guards."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.user: str | None = None

    def user_cmd(self, name: object) -> None:
        self.calls.append(("USER", name))
        self.user = str(name)

    def pass_cmd(self, password: object) -> None:
        self.calls.append(("PASS", password))

    def retr(self, number: object) -> None:
        self.calls.append(("RETR", number))

    def simple(self, argument: object) -> None:
        self.calls.append(("simple", argument))


def _msg_number(text: str) -> int:
    number = int(text)  # ValueError for junk
    if number < 1:
        raise ValueError("message numbers start at 1")
    return number


# The whole POP3 table in a few lines (RFC 1939, RFC 2595 STLS, RFC 2449 CAPA).
POP3 = CommandTable(
    [
        Command(
            "USER",
            {AUTHORIZATION},
            Pop3.user_cmd,
            Argument.REQUIRED,
            help="USER name",
            capability="USER",
        ),
        Command(
            "PASS",
            {AUTHORIZATION},
            Pop3.pass_cmd,
            Argument.REQUIRED,
            guard=lambda s: None if s.user else "USER first",
            help="PASS secret",
        ),
        Command(
            "STLS",
            {AUTHORIZATION},
            Pop3.simple,
            refused_when_secure=True,
            capability="STLS",
            help="STLS",
        ),
        Command("STAT", {TRANSACTION}, Pop3.simple, help="STAT"),
        Command(
            "RETR", {TRANSACTION}, Pop3.retr, Argument.REQUIRED, parse=_msg_number, help="RETR msg"
        ),
        Command("TOP", {TRANSACTION}, Pop3.simple, Argument.REQUIRED, capability="TOP"),
        Command("LIST", {TRANSACTION}, Pop3.simple, Argument.OPTIONAL, help="LIST [msg]"),
        Command("CAPA", {AUTHORIZATION, TRANSACTION}, Pop3.simple),
        Command("QUIT", {AUTHORIZATION, TRANSACTION}, Pop3.simple, help="QUIT"),
    ],
    sequence_text="command not valid in this state",
    unknown_text="unknown command",
)


def pop3_reply(refusal: Refusal) -> bytes:
    """How POP3 maps every refusal: one -ERR line."""
    return b"-ERR " + refusal.text.encode() + b"\r\n"


class ToyPop3Tests(SynchronousTestCase):
    def test_dispatch_calls_the_handler_with_the_argument(self) -> None:
        session = Pop3()
        self.assertIsNone(POP3.dispatch(session, "USER", "alice", AUTHORIZATION))
        self.assertIsNone(POP3.dispatch(session, "RETR", "3", TRANSACTION))
        self.assertEqual(session.calls, [("USER", "alice"), ("RETR", 3)])

    def test_refusal_kinds(self) -> None:
        session = Pop3()
        cases = {
            ("NOPE", "", AUTHORIZATION): RefusalKind.UNKNOWN,
            ("STAT", "", AUTHORIZATION): RefusalKind.BAD_SEQUENCE,
            ("USER", "alice", TRANSACTION): RefusalKind.BAD_SEQUENCE,
            ("QUIT", "", UPDATE): RefusalKind.BAD_SEQUENCE,
            ("USER", "", AUTHORIZATION): RefusalKind.ARGUMENT,
            ("STAT", "x", TRANSACTION): RefusalKind.ARGUMENT,
            ("RETR", "zero", TRANSACTION): RefusalKind.ARGUMENT,
            ("RETR", "0", TRANSACTION): RefusalKind.ARGUMENT,
            ("PASS", "pw", AUTHORIZATION): RefusalKind.BAD_SEQUENCE,  # the guard: no USER yet
        }
        for (verb, argument, state), kind in cases.items():
            refusal = POP3.dispatch(session, verb, argument, state)
            assert refusal is not None, (verb, state)
            self.assertIs(refusal.kind, kind, (verb, argument, state))
        self.assertEqual(session.calls, [])
        self.assertEqual(
            pop3_reply(POP3.dispatch(session, "STAT", "", AUTHORIZATION)),  # type: ignore[arg-type]
            b"-ERR command not valid in this state\r\n",
        )
        self.assertEqual(
            POP3.dispatch(session, "RETR", "0", TRANSACTION),
            Refusal(RefusalKind.ARGUMENT, "RETR", "message numbers start at 1"),
        )

    def test_guard_and_secure(self) -> None:
        session = Pop3()
        POP3.dispatch(session, "USER", "alice", AUTHORIZATION)
        self.assertIsNone(POP3.dispatch(session, "PASS", "pw", AUTHORIZATION))
        refusal = POP3.dispatch(session, "STLS", "", AUTHORIZATION, secure=True)
        self.assertEqual(refusal, Refusal(RefusalKind.BAD_SEQUENCE, "STLS", "TLS already active"))

    def test_capabilities_follow_state_and_tls(self) -> None:
        self.assertEqual(POP3.capabilities(AUTHORIZATION, context=Pop3()), ["USER", "STLS"])
        self.assertEqual(POP3.capabilities(AUTHORIZATION, secure=True), ["USER"])
        self.assertEqual(POP3.capabilities(TRANSACTION), ["TOP"])

    def test_help_lines(self) -> None:
        lines = POP3.help_lines()
        self.assertEqual(lines[0], "USER  USER name")
        self.assertEqual(len(lines), len(POP3))
        self.assertEqual(POP3.help_lines({"QUIT"}), ["QUIT  QUIT"])
        self.assertEqual(POP3.help_for("retr"), "RETR msg")
        self.assertIsNone(POP3.help_for("XYZ"))

    def test_valid_in_and_states(self) -> None:
        self.assertEqual(POP3.valid_in(AUTHORIZATION), {"USER", "PASS", "STLS", "CAPA", "QUIT"})
        self.assertEqual(POP3.valid_in(UPDATE), frozenset())
        self.assertEqual(POP3.states, {AUTHORIZATION, TRANSACTION})

    def test_needs_auth_and_tls(self) -> None:
        ftp = CommandTable(
            [
                Command("USER", {"control"}, None, Argument.REQUIRED),
                Command("RETR", {"control"}, None, Argument.REQUIRED, needs_auth=True),
                Command("PROT", {"control"}, None, Argument.REQUIRED, needs_tls=True),
            ],
            auth_text="Please login with USER and PASS",
        )
        self.assertEqual(
            ftp.resolve("RETR", "f", "control"),
            Refusal(RefusalKind.AUTH_REQUIRED, "RETR", "Please login with USER and PASS"),
        )
        self.assertIs(ftp.resolve("PROT", "P", "control").kind, RefusalKind.TLS_REQUIRED)  # type: ignore[union-attr]
        self.assertIsInstance(ftp.resolve("RETR", "f", "control", authenticated=True), Command)
        self.assertFalse(ftp["RETR"].unconditional)
        self.assertTrue(ftp["USER"].unconditional)

    def test_bind_attaches_handlers_and_checks_them(self) -> None:
        bare = CommandTable([Command("NOOP", {"s"}), Command("QUIT", {"s"})])
        calls: list[str] = []
        bound = bare.bind({"NOOP": lambda t, a: calls.append("noop"), "QUIT": lambda t, a: None})
        self.assertIsNone(bound.dispatch(None, "NOOP", "", "s"))
        self.assertEqual(calls, ["noop"])
        self.assertRaises(ValueError, bare.bind, {"NOOP": print})
        self.assertRaises(ValueError, bare.bind, {"NOOP": print, "QUIT": print, "X": print})
        self.assertRaises(LookupError, bare.dispatch, None, "NOOP", "", "s")

    def test_declaration_errors(self) -> None:
        self.assertRaises(ValueError, Command, "noop", {"s"})
        self.assertRaises(ValueError, CommandTable, [Command("A", {"s"}), Command("A", {"t"})])

    @given(
        st.sampled_from([*POP3.verbs, "XYZ"]),
        st.sampled_from(["", "1", "x"]),
        st.sampled_from([AUTHORIZATION, TRANSACTION, UPDATE]),
        st.booleans(),
    )
    def test_resolve_agrees_with_the_declaration(
        self, verb: str, argument: str, state: str, secure: bool
    ) -> None:
        session = Pop3()
        session.user = "u"
        found = POP3.resolve(verb, argument, state, secure=secure, context=session)
        command = POP3.get(verb)
        if command is None:
            self.assertIs(found.kind, RefusalKind.UNKNOWN)  # type: ignore[union-attr]
            return
        valid = (
            state in command.states
            and not (command.refused_when_secure and secure)
            and not (command.argument is Argument.NONE and argument)
            and not (command.argument is Argument.REQUIRED and not argument)
        )
        self.assertEqual(found is command, valid, (verb, argument, state, secure, found))


class SmtpTableTests(SynchronousTestCase):
    def test_smtp_refusals(self) -> None:
        self.assertEqual(
            SMTP_COMMANDS.resolve("RCPT", "TO:<a@b>", State.GREETED),
            Refusal(RefusalKind.BAD_SEQUENCE, "RCPT", "Error: need MAIL command"),
        )
        self.assertEqual(
            SMTP_COMMANDS.resolve("NOOP", None, State.DATA),
            Refusal(RefusalKind.BAD_SEQUENCE, "NOOP", "Error: no command expected now"),
        )
        self.assertEqual(
            SMTP_COMMANDS.argument_refusal("QUIT", "now"),
            Refusal(RefusalKind.ARGUMENT, "QUIT", "Syntax error: QUIT takes no argument"),
        )

    def test_smtp_capabilities(self) -> None:
        class Esmtp:
            esmtp = True

        class Helo:
            esmtp = False

        self.assertEqual(
            SMTP_COMMANDS.capabilities(State.GREETED, context=Esmtp()), ["STARTTLS", "AUTH"]
        )
        self.assertEqual(SMTP_COMMANDS.capabilities(State.GREETED, context=Helo()), [])
        self.assertEqual(
            SMTP_COMMANDS.capabilities(
                State.GREETED, secure=True, authenticated=True, context=Esmtp()
            ),
            [],
        )


class ToyImapTests(SynchronousTestCase):
    """IMAP's four states and tagged replies fit the same declaration."""

    NOT_AUTH, AUTH, SELECTED, LOGOUT = "not-authenticated", "authenticated", "selected", "logout"
    ANY = (NOT_AUTH, AUTH, SELECTED)
    TABLE = CommandTable(
        [
            Command("CAPABILITY", ANY),
            Command("LOGIN", (NOT_AUTH,), None, Argument.REQUIRED, capability="LOGIN"),
            Command("STARTTLS", (NOT_AUTH,), refused_when_secure=True, capability="STARTTLS"),
            Command("SELECT", (AUTH, SELECTED), None, Argument.REQUIRED),
            Command("FETCH", (SELECTED,), None, Argument.REQUIRED),
            Command("LOGOUT", ANY),
        ],
        sequence_text="{verb} not allowed now",
    )

    @staticmethod
    def tagged(tag: str, refusal: Refusal) -> str:
        status = "NO" if refusal.kind is RefusalKind.AUTH_REQUIRED else "BAD"
        return f"{tag} {status} {refusal.text}"

    def test_tagged_refusals(self) -> None:
        refusal = self.TABLE.resolve("FETCH", "1 FLAGS", self.AUTH)
        assert isinstance(refusal, Refusal)
        self.assertEqual(self.tagged("a1", refusal), "a1 BAD FETCH not allowed now")
        self.assertIsInstance(self.TABLE.resolve("FETCH", "1 FLAGS", self.SELECTED), Command)
        refusal = self.TABLE.resolve("SELECT", "INBOX", self.LOGOUT)
        assert isinstance(refusal, Refusal)
        self.assertEqual(self.tagged("a2", refusal), "a2 BAD no command expected now")
        self.assertEqual(self.TABLE.capabilities(self.NOT_AUTH), ["LOGIN", "STARTTLS"])
        self.assertEqual(self.TABLE.capabilities(self.NOT_AUTH, secure=True), ["LOGIN"])
