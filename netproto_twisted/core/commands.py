"""A declarative command table for command/response protocols; sans-I/O.

Each protocol declares its verbs once, as :class:`Command` entries of a
:class:`CommandTable`: the states where the verb is valid, its argument rule
(:class:`Argument`, optionally a parser), whether it needs a login or TLS,
its handler, its help text and the capability keyword it advertises.  From
that one table come:

- dispatch: :meth:`CommandTable.resolve` gives the entry to run, or a
  :class:`Refusal`; :meth:`CommandTable.dispatch` also parses the argument and
  calls the handler;
- the refusals, as a protocol-neutral :class:`Refusal` (a
  :class:`RefusalKind` and a text) that each protocol maps to its own reply:
  SMTP ``503 5.5.1``, POP3 ``-ERR``, IMAP tagged ``BAD``/``NO``, FTP
  ``503``/``530``, NNTP ``480``/``502``;
- the verbs valid in a state (:meth:`CommandTable.valid_in`), the HELP
  listing (:meth:`CommandTable.help_lines`) and the capability list
  (:meth:`CommandTable.capabilities`).

A POP3 server's table, for example::

    AUTHORIZATION, TRANSACTION = "authorization", "transaction"
    POP3 = CommandTable(
        [
            Command("USER", {AUTHORIZATION}, Pop3Connection.user, Argument.REQUIRED,
                    help="name the mailbox", capability="USER"),
            Command("STLS", {AUTHORIZATION}, Pop3Connection.stls, refused_when_secure=True,
                    capability="STLS"),
            Command("STAT", {TRANSACTION}, Pop3Connection.stat),
            Command("RETR", {TRANSACTION}, Pop3Connection.retr, Argument.REQUIRED, parse=int),
            Command("QUIT", {AUTHORIZATION, TRANSACTION}, Pop3Connection.quit),
        ],
        sequence_text="command not valid in this state",
    )

    match POP3.resolve(verb, argument, state, secure=tls):
        case Refusal() as refusal:
            send(b"-ERR " + refusal.text.encode() + b"\\r\\n")
        case command:
            command.handler(connection, argument)

Handlers are whatever the protocol wants (usually unbound methods of its
connection class taking the connection and the argument);
:meth:`CommandTable.bind` attaches them to a table declared without them
(SMTP declares its verbs in its sans-I/O wire layer, shared with the
client, and its server binds the handlers).

This module imports nothing but the standard library.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar, cast

__all__ = [
    "Argument",
    "Command",
    "CommandTable",
    "Refusal",
    "RefusalKind",
]

S = TypeVar("S", bound=Hashable)
H = TypeVar("H")
H2 = TypeVar("H2")


class Argument(enum.Enum):
    """Whether a verb takes an argument."""

    #: No argument allowed (``DATA``, ``STAT``, ``NOOP`` in most protocols).
    NONE = "none"
    #: An argument may be given or not (``HELP [verb]``, ``LIST [msg]``).
    OPTIONAL = "optional"
    #: An argument must be given (``USER name``, ``RETR msg``).
    REQUIRED = "required"


class RefusalKind(enum.Enum):
    """Why the table refused a command; each protocol maps a kind to its reply."""

    #: The verb is not in the table (SMTP 500, POP3 -ERR, IMAP BAD, FTP 500, NNTP 500).
    UNKNOWN = "unknown"
    #: The verb exists but not in this state, or its guard refused it (SMTP 503, FTP 503).
    BAD_SEQUENCE = "bad-sequence"
    #: The argument breaks the verb's rule or its parser (SMTP 501, FTP 501, NNTP 501).
    ARGUMENT = "argument"
    #: The verb needs a login first (SMTP 530, FTP 530, NNTP 480, IMAP NO/BAD).
    AUTH_REQUIRED = "auth-required"
    #: The verb needs TLS first (SMTP 530 5.7.0, NNTP 483, FTP 534).
    TLS_REQUIRED = "tls-required"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A command the table refused: the kind, the verb (upper case) and a human text."""

    kind: RefusalKind
    verb: str
    text: str


@dataclass(frozen=True)
class Command(Generic[S, H]):
    """One verb of a protocol: where it is valid, its argument rule, its handler and help.

    :ivar verb: the verb, upper case (``"RETR"``).
    :ivar states: the states in which the verb may come.
    :ivar handler: what runs it (the protocol decides the signature), or ``None``
        in a table whose handlers are attached later with :meth:`CommandTable.bind`.
    :ivar argument: :class:`Argument` rule, checked before the parser.
    :ivar parse: turns the argument text into a value (``int``); a ``ValueError``
        it raises becomes an :attr:`RefusalKind.ARGUMENT` refusal with its message.
    :ivar needs_auth: refused with :attr:`RefusalKind.AUTH_REQUIRED` before login.
    :ivar needs_tls: refused with :attr:`RefusalKind.TLS_REQUIRED` without TLS.
    :ivar refused_when_secure: refused (bad sequence) once TLS is active (STARTTLS, STLS).
    :ivar refused_when_authenticated: refused (bad sequence) after login (AUTH, USER).
    :ivar guard: ``guard(context)`` returns a refusal text (bad sequence) or ``None``,
        for what a state cannot say (SMTP: AUTH needs EHLO, not HELO).
    :ivar help: one line of help text.
    :ivar capability: the keyword the verb advertises (EHLO, CAPA, CAPABILITY, FEAT).
    """

    verb: str
    states: frozenset[S]
    handler: H | None = None
    argument: Argument = Argument.NONE
    parse: Callable[[str], object] | None = None
    needs_auth: bool = False
    needs_tls: bool = False
    refused_when_secure: bool = False
    refused_when_authenticated: bool = False
    guard: Callable[[Any], str | None] | None = None
    help: str = ""
    capability: str | None = None
    #: Whether only the state decides (no login, TLS, guard or ``refused_when_*`` check):
    #: such an entry found in :meth:`CommandTable.row` needs no :meth:`CommandTable.resolve`.
    unconditional: bool = field(init=False, default=True)

    def __init__(
        self,
        verb: str,
        states: Iterable[S],
        handler: H | None = None,
        argument: Argument = Argument.NONE,
        *,
        parse: Callable[[str], object] | None = None,
        needs_auth: bool = False,
        needs_tls: bool = False,
        refused_when_secure: bool = False,
        refused_when_authenticated: bool = False,
        guard: Callable[[Any], str | None] | None = None,
        help: str = "",
        capability: str | None = None,
    ) -> None:
        if not verb or verb != verb.upper():
            raise ValueError(f"a verb is upper case and not empty: {verb!r}")
        set_ = object.__setattr__
        set_(self, "verb", verb)
        set_(self, "states", frozenset(states))
        set_(self, "handler", handler)
        set_(self, "argument", argument)
        set_(self, "parse", parse)
        set_(self, "needs_auth", needs_auth)
        set_(self, "needs_tls", needs_tls)
        set_(self, "refused_when_secure", refused_when_secure)
        set_(self, "refused_when_authenticated", refused_when_authenticated)
        set_(self, "guard", guard)
        set_(self, "help", help)
        set_(self, "capability", capability)
        set_(
            self,
            "unconditional",
            not (
                needs_auth
                or needs_tls
                or refused_when_secure
                or refused_when_authenticated
                or guard is not None
            ),
        )


@dataclass(frozen=True)
class _Texts:
    unknown: str
    sequence: str
    no_commands: str
    argument_forbidden: str
    argument_missing: str
    auth: str
    tls: str
    secure: str
    authenticated: str
    per_state: Mapping[tuple[Any, str], str] = field(default_factory=dict)


class CommandTable(Generic[S, H]):
    """A protocol's verbs (:class:`Command`), and what is derived from them.

    The ``*_text`` parameters are the refusal texts; ``{verb}`` in them is
    replaced by the verb.  ``sequence_texts`` gives a better text for a
    particular ``(state, verb)`` pair (SMTP: RCPT before MAIL is "need MAIL
    command"); ``no_commands_text`` is used in states where no verb is valid
    at all (SMTP's DATA and AUTH exchanges).

    :raises ValueError: if a verb is declared twice.
    """

    def __init__(
        self,
        commands: Iterable[Command[S, H]],
        *,
        unknown_text: str = "unknown command",
        sequence_text: str = "bad sequence of commands",
        sequence_texts: Mapping[tuple[S, str], str] | None = None,
        no_commands_text: str = "no command expected now",
        argument_forbidden_text: str = "{verb} takes no argument",
        argument_missing_text: str = "{verb} needs an argument",
        auth_text: str = "authentication required",
        tls_text: str = "TLS required",
        secure_text: str = "TLS already active",
        authenticated_text: str = "already authenticated",
    ) -> None:
        self._commands: dict[str, Command[S, H]] = {}
        for command in commands:
            if command.verb in self._commands:
                raise ValueError(f"verb declared twice: {command.verb}")
            self._commands[command.verb] = command
        self._texts = _Texts(
            unknown_text,
            sequence_text,
            no_commands_text,
            argument_forbidden_text,
            argument_missing_text,
            auth_text,
            tls_text,
            secure_text,
            authenticated_text,
            dict(sequence_texts or {}),
        )
        states: set[S] = set()
        for command in self._commands.values():
            states |= command.states
        #: state -> verb -> entry, the dispatch index (one dict lookup per command).
        self._by_state: dict[S, dict[str, Command[S, H]]] = {
            state: {v: c for v, c in self._commands.items() if state in c.states}
            for state in states
        }

        #: ``state -> verb -> entry`` for the valid verbs (read-only): :meth:`row` without
        #: the call, for a connection's hot path.
        self.rows: Mapping[S, Mapping[str, Command[S, H]]] = self._by_state

    # -- the table ---------------------------------------------------------------------

    @property
    def verbs(self) -> tuple[str, ...]:
        """Every verb, in declaration order."""
        return tuple(self._commands)

    @property
    def states(self) -> frozenset[S]:
        """Every state in which at least one verb is valid."""
        return frozenset(self._by_state)

    def __contains__(self, verb: object) -> bool:
        return verb in self._commands

    def __getitem__(self, verb: str) -> Command[S, H]:
        return self._commands[verb]

    def __iter__(self) -> Any:
        return iter(self._commands.values())

    def __len__(self) -> int:
        return len(self._commands)

    def get(self, verb: str) -> Command[S, H] | None:
        """The entry for ``verb`` (upper case), or ``None``."""
        return self._commands.get(verb)

    def row(self, state: S) -> Mapping[str, Command[S, H]]:
        """verb -> entry for the verbs valid in ``state`` (the dispatch index; do not modify).

        A fast path for a hot loop: an entry found here whose
        :attr:`~Command.unconditional` is true may be run at once (the
        argument rule aside); anything else goes through :meth:`resolve`.
        """
        return self._by_state.get(state, _EMPTY)

    def valid_in(self, state: S) -> frozenset[str]:
        """The verbs valid in ``state`` (before guards, login and TLS checks)."""
        return frozenset(self._by_state.get(state, ()))

    def verbs_with(self, argument: Argument) -> frozenset[str]:
        """The verbs whose argument rule is ``argument``."""
        return frozenset(v for v, c in self._commands.items() if c.argument is argument)

    def bind(self, handlers: Mapping[str, H2]) -> CommandTable[S, H2]:
        """A copy of this table with the handlers attached, verb by verb.

        :raises ValueError: unless ``handlers`` names exactly the table's verbs.
        """
        missing = set(self._commands) - set(handlers)
        extra = set(handlers) - set(self._commands)
        if missing or extra:
            raise ValueError(f"handlers missing for {sorted(missing)}, unknown {sorted(extra)}")
        table: CommandTable[S, H2] = CommandTable.__new__(CommandTable)
        table._commands = {
            v: cast("Command[S, H2]", replace(c, handler=handlers[v]))  # type: ignore[arg-type]
            for v, c in self._commands.items()
        }
        table._texts = self._texts
        table._by_state = {
            state: {v: table._commands[v] for v in row} for state, row in self._by_state.items()
        }
        table.rows = table._by_state
        return table

    # -- checking and dispatch ---------------------------------------------------------

    def resolve(
        self,
        verb: str,
        argument: str | None,
        state: S,
        *,
        authenticated: bool = False,
        secure: bool = False,
        context: object = None,
    ) -> Command[S, H] | Refusal:
        """The entry that handles ``verb`` now, or the :class:`Refusal` to send.

        Checked in order: the verb is known; valid in ``state``; TLS and login
        requirements; the guard (given ``context``); ``refused_when_*``; the
        argument rule (not checked when ``argument`` is ``None``).  ``verb``
        must already be upper case.
        """
        command = self._by_state.get(state, _EMPTY).get(verb)
        if command is None:
            return self._not_now(verb, state)
        if command.needs_tls and not secure:
            return Refusal(RefusalKind.TLS_REQUIRED, verb, self._text(self._texts.tls, verb))
        if command.needs_auth and not authenticated:
            return Refusal(RefusalKind.AUTH_REQUIRED, verb, self._text(self._texts.auth, verb))
        if command.guard is not None:
            text = command.guard(context)
            if text is not None:
                return Refusal(RefusalKind.BAD_SEQUENCE, verb, text)
        if command.refused_when_secure and secure:
            return Refusal(RefusalKind.BAD_SEQUENCE, verb, self._text(self._texts.secure, verb))
        if command.refused_when_authenticated and authenticated:
            return Refusal(
                RefusalKind.BAD_SEQUENCE, verb, self._text(self._texts.authenticated, verb)
            )
        rule = command.argument
        if argument is None:
            pass
        elif rule is Argument.NONE:
            if argument:
                return Refusal(
                    RefusalKind.ARGUMENT, verb, self._text(self._texts.argument_forbidden, verb)
                )
        elif rule is Argument.REQUIRED and not argument:
            return Refusal(
                RefusalKind.ARGUMENT, verb, self._text(self._texts.argument_missing, verb)
            )
        return command

    def argument_refusal(self, verb: str, argument: str) -> Refusal | None:
        """The :attr:`RefusalKind.ARGUMENT` refusal for ``argument``, whatever the state.

        For parsers that check a command's syntax before its state is known
        (SMTP's :func:`~netproto_twisted.smtp.parse_command`).
        """
        command = self._commands.get(verb)
        if command is None:
            return Refusal(RefusalKind.UNKNOWN, verb, self._text(self._texts.unknown, verb))
        if command.argument is Argument.NONE and argument:
            return Refusal(
                RefusalKind.ARGUMENT, verb, self._text(self._texts.argument_forbidden, verb)
            )
        if command.argument is Argument.REQUIRED and not argument:
            return Refusal(
                RefusalKind.ARGUMENT, verb, self._text(self._texts.argument_missing, verb)
            )
        return None

    def dispatch(
        self,
        target: object,
        verb: str,
        argument: str,
        state: S,
        *,
        authenticated: bool = False,
        secure: bool = False,
    ) -> Refusal | None:
        """Resolve, parse the argument and call ``handler(target, value)``; or return the refusal.

        ``value`` is the argument text, or what ``parse`` made of it (a
        ``ValueError`` from the parser is an :attr:`RefusalKind.ARGUMENT`
        refusal).  ``target`` is also the guard's context.  The handler's
        return value is ignored.
        """
        found = self.resolve(
            verb, argument, state, authenticated=authenticated, secure=secure, context=target
        )
        if isinstance(found, Refusal):
            return found
        value: object = argument
        if found.parse is not None and (argument or found.argument is Argument.REQUIRED):
            try:
                value = found.parse(argument)
            except ValueError as e:
                return Refusal(RefusalKind.ARGUMENT, verb, str(e) or f"bad argument to {verb}")
        handler: Any = found.handler
        if handler is None:
            raise LookupError(f"no handler bound for {verb}")
        handler(target, value)
        return None

    def _not_now(self, verb: str, state: S) -> Refusal:
        texts = self._texts
        if verb not in self._commands:
            return Refusal(RefusalKind.UNKNOWN, verb, self._text(texts.unknown, verb))
        if state not in self._by_state:
            return Refusal(RefusalKind.BAD_SEQUENCE, verb, self._text(texts.no_commands, verb))
        text = texts.per_state.get((state, verb), texts.sequence)
        return Refusal(RefusalKind.BAD_SEQUENCE, verb, self._text(text, verb))

    @staticmethod
    def _text(template: str, verb: str) -> str:
        return template.replace("{verb}", verb)

    # -- what is derived for the peer ----------------------------------------------------

    def help_lines(self, verbs: Collection[str] | None = None) -> list[str]:
        """``"VERB  help text"`` lines, in declaration order (only ``verbs`` if given)."""
        width = max((len(v) for v in self._commands), default=0)
        return [
            f"{c.verb:<{width}}  {c.help}".rstrip()
            for c in self._commands.values()
            if verbs is None or c.verb in verbs
        ]

    def help_for(self, verb: str) -> str | None:
        """The help text of ``verb`` (any case), or ``None`` if it is not a verb here."""
        command = self._commands.get(verb.upper())
        return None if command is None else command.help

    def capabilities(
        self,
        state: S,
        *,
        authenticated: bool = False,
        secure: bool = False,
        context: object = None,
    ) -> list[str]:
        """The capability keywords of the verbs that :meth:`resolve` would accept in ``state``.

        The argument rule is not considered (a capability names a verb, not a use of it).
        """
        keywords: list[str] = []
        for command in self._by_state.get(state, _EMPTY).values():
            if command.capability is None:
                continue
            found = self.resolve(
                command.verb,
                None,
                state,
                authenticated=authenticated,
                secure=secure,
                context=context,
            )
            if not isinstance(found, Refusal):
                keywords.append(command.capability)
        return keywords


_EMPTY: Mapping[str, Any] = {}
