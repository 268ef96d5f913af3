"""IMAP commands: :func:`parse_command` turns a command's segments into a :class:`Request`."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from netproto_twisted.imap4.wire.fetchspec import FetchAtt, parse_fetch_atts
from netproto_twisted.imap4.wire.search import SearchKey, parse_search
from netproto_twisted.imap4.wire.tokens import CommandSyntaxError, Reader, SequenceSet

__all__ = [
    "AppendMessage",
    "QresyncParams",
    "Request",
    "append_literal_expected",
    "append_prefix",
    "parse_command",
    "parse_date_time",
]

_DATE_TIME = re.compile(
    r"([ \d]\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)\Z"
)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_NO_ARGS = frozenset(
    {"CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "CHECK", "CLOSE", "UNSELECT", "EXPUNGE",
     "NAMESPACE", "IDLE"}
)  # fmt: skip


@dataclass(frozen=True)
class AppendMessage:
    """One message of APPEND: flags, internal date and the literal (usually streamed)."""

    flags: tuple[str, ...]
    internal_date: datetime.datetime | None
    literal: object
    binary: bool = False


@dataclass(frozen=True)
class QresyncParams:
    """SELECT's ``(QRESYNC (uidvalidity modseq [known-uids [(seq-match uid-match)]]))``.

    :ivar uid_validity: the client's cached UIDVALIDITY.
    :ivar modseq: the client's cached HIGHESTMODSEQ.
    :ivar known_uids: the UIDs the client knows (``None``: all).
    :ivar seq_match: message sequence numbers and the UIDs the client has for them.
    """

    uid_validity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


_MAX_MODSEQ = 2**63 - 1


@dataclass
class Request:
    """A parsed command: tag, verb (``UID FETCH`` is ``FETCH`` with ``uid``) and arguments.

    The argument fields used depend on the verb; the others keep their defaults.
    """

    tag: str
    verb: str
    uid: bool = False
    mailbox: bytes = b""
    mailbox2: bytes = b""
    strings: list[bytes] = field(default_factory=list)
    atoms: list[str] = field(default_factory=list)
    sequence: SequenceSet | None = None
    fetch: list[FetchAtt] = field(default_factory=list)
    search: SearchKey | None = None
    search_return: list[str] | None = None
    charset: str | None = None
    store_mode: str = ""
    silent: bool = False
    flags: list[str] = field(default_factory=list)
    messages: list[AppendMessage] = field(default_factory=list)
    params: dict[str, object] = field(default_factory=dict)
    patterns: list[bytes] = field(default_factory=list)
    initial_response: bytes | None = None


def parse_date_time(text: str) -> datetime.datetime:
    """``"17-Jul-1996 02:44:25 -0700"`` (RFC 3501 date-time)."""
    m = _DATE_TIME.match(text)
    if m is None:
        raise CommandSyntaxError("bad date-time")
    day, mon, year, hh, mm, ss, sign, zh, zm = m.groups()
    try:
        offset = datetime.timedelta(hours=int(zh), minutes=int(zm))
        tz = datetime.timezone(-offset if sign == "-" else offset)
        return datetime.datetime(
            int(year),
            _MONTHS.index(mon.lower()) + 1,
            int(day),
            int(hh),
            int(mm),
            int(ss),
            tzinfo=tz,
        )
    except ValueError:
        raise CommandSyntaxError("bad date-time") from None


def _paren_atoms(r: Reader) -> list[str]:
    r.open_list()
    out: list[str] = []
    if not r.maybe(b")"):
        while True:
            if r.peek() == 0x28:  # nested (e.g. RETURN (STATUS (MESSAGES)))
                out.append("(" + " ".join(_paren_atoms(r)) + ")")
            else:
                out.append(r.atom().upper())
            if r.maybe(b")"):
                break
            r.space()
    r.depth -= 1
    return out


def _append(r: Reader, req: Request, probe: object = None) -> None:
    req.mailbox = r.mailbox()
    while True:
        r.space()
        flags: list[str] = []
        when = None
        if r.peek() == 0x28:
            flags = r.flag_list()
            r.space()
        if r.peek() == 0x22:
            when = parse_date_time(r.quoted().decode("ascii", "replace"))
            r.space()
        binary = r.peek() == 0x7E
        if not r.at_literal():
            word = r.atom().upper()
            raise CommandSyntaxError(f"APPEND extension {word[:20]} not supported")
        literal = r.literal()
        if probe is not None and literal is probe:
            raise _ProbeHit(tuple(flags), when)
        req.messages.append(AppendMessage(tuple(flags), when, literal, binary))
        if r.at_end():
            return
        if len(req.messages) >= 1000:
            raise CommandSyntaxError("too many messages in one APPEND")


class _ProbeHit(Exception):
    def __init__(self, flags: tuple[str, ...], when: datetime.datetime | None) -> None:
        super().__init__()
        self.flags = flags
        self.when = when


def append_prefix(
    segments: Sequence[object], placeholder: object
) -> tuple[bytes, tuple[str, ...], datetime.datetime | None] | None:
    """If a literal announced now is an APPEND message, its mailbox, flags and date; else None.

    ``segments`` are the command so far, the last line part ending with the
    marker; ``placeholder`` stands for the literal not yet received.  The
    message is then streamed to the store rather than held.
    """
    req = Request("", "APPEND")
    try:
        r = Reader([*segments, placeholder, b""])
        r.tag()
        r.space()
        if r.atom().upper() != "APPEND":
            return None
        r.space()
        _append(r, req, placeholder)
    except _ProbeHit as hit:
        return req.mailbox, hit.flags, hit.when
    except CommandSyntaxError:
        return None
    return None


def append_literal_expected(segments: Sequence[object], placeholder: object) -> bool:
    """Whether a literal announced now would be an APPEND message (see :func:`append_prefix`)."""
    return append_prefix(segments, placeholder) is not None


def _store(r: Reader, req: Request) -> None:
    req.sequence = r.sequence_set()
    r.space()
    if r.peek() == 0x28:
        mods = _paren_atoms(r)
        if len(mods) == 2 and mods[0] == "UNCHANGEDSINCE" and _modseq(mods[1]) is not None:
            req.params["UNCHANGEDSINCE"] = int(mods[1])
        else:
            raise CommandSyntaxError("bad STORE modifier")
        r.space()
    item = r.atom().upper()
    mode = ""
    if item[:1] in "+-":
        mode, item = item[0], item[1:]
    if item not in ("FLAGS", "FLAGS.SILENT"):
        raise CommandSyntaxError("STORE needs FLAGS, +FLAGS or -FLAGS")
    req.store_mode = mode
    req.silent = item.endswith(".SILENT")
    r.space()
    if r.peek() == 0x28:
        req.flags = r.flag_list()
    else:
        req.flags = [r.flag()]
        while r.maybe(b" "):
            req.flags.append(r.flag())


def _modseq(text: str) -> int | None:
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if value <= _MAX_MODSEQ else None


def _fetch_modifiers(r: Reader, req: Request) -> None:
    """``(CHANGEDSINCE n [VANISHED])`` (RFC 7162), in any order."""
    mods = _paren_atoms(r)
    i = 0
    while i < len(mods):
        name = mods[i]
        if name == "CHANGEDSINCE" and "CHANGEDSINCE" not in req.params and i + 1 < len(mods):
            value = _modseq(mods[i + 1])
            if value is None or value == 0:
                raise CommandSyntaxError("bad CHANGEDSINCE value")
            req.params["CHANGEDSINCE"] = value
            i += 2
        elif name == "VANISHED" and "VANISHED" not in req.params:
            req.params["VANISHED"] = True
            i += 1
        else:
            raise CommandSyntaxError("bad FETCH modifier")
    if "VANISHED" in req.params and "CHANGEDSINCE" not in req.params:
        raise CommandSyntaxError("VANISHED needs CHANGEDSINCE")


def _select_params(r: Reader, req: Request) -> None:
    """SELECT/EXAMINE parameters: ``CONDSTORE`` and ``QRESYNC (...)`` (RFC 7162)."""
    r.open_list()
    while True:
        word = r.atom().upper()
        if word == "CONDSTORE" and "CONDSTORE" not in req.params:
            req.params["CONDSTORE"] = True
        elif word == "QRESYNC" and "QRESYNC" not in req.params:
            r.space()
            r.open_list()
            validity = r.number(nonzero=True)
            r.space()
            modseq = r.number64()
            if modseq > _MAX_MODSEQ:
                raise CommandSyntaxError("mod-sequence out of range")
            known: SequenceSet | None = None
            match: tuple[SequenceSet, SequenceSet] | None = None
            if r.maybe(b" "):
                if r.peek() != 0x28:
                    known = r.sequence_set(allow_last=False)
                    r.maybe(b" ")
                if r.peek() == 0x28:
                    r.open_list()
                    seqs = r.sequence_set(allow_last=False)
                    r.space()
                    uids = r.sequence_set(allow_last=False)
                    r.close_list()
                    match = (seqs, uids)
            r.close_list()
            req.params["QRESYNC"] = QresyncParams(validity, modseq, known, match)
        else:
            raise CommandSyntaxError(f"unknown SELECT parameter {word[:20]}")
        if r.maybe(b")"):
            break
        r.space()
    r.depth -= 1


def _search(r: Reader, req: Request) -> None:
    save = r.pos
    word = r.atom().upper() if r.peek() not in (0x28, 0x2A) else ""
    if word == "RETURN":
        r.space()
        req.search_return = _paren_atoms(r)
        r.space()
        save = r.pos
        word = r.atom().upper() if r.peek() not in (0x28, 0x2A) else ""
    if word == "CHARSET":
        r.space()
        charset = r.astring().decode("ascii", "replace")
        if charset.upper() not in ("UTF-8", "US-ASCII"):
            raise _BadCharset
        req.charset = charset.upper()
        r.space()
    else:
        r.pos = save
    req.search = parse_search(r, "utf-8")


class _BadCharset(CommandSyntaxError):
    def __init__(self) -> None:
        super().__init__("[BADCHARSET (UTF-8 US-ASCII)] charset not supported")


def _list(r: Reader, req: Request) -> None:
    if r.peek() == 0x28:
        req.params["select"] = _paren_atoms(r)
        r.space()
    req.mailbox = r.mailbox() if r.peek() != 0x22 else r.quoted()
    r.space()
    if r.peek() == 0x28:
        r.open_list()
        while True:
            req.patterns.append(r.list_mailbox())
            if r.maybe(b")"):
                break
            r.space()
        r.depth -= 1
    else:
        req.patterns.append(r.list_mailbox())
    if r.maybe(b" "):
        if r.atom().upper() != "RETURN":
            raise CommandSyntaxError("expected RETURN")
        r.space()
        req.params["return"] = _paren_atoms(r)


def _id(r: Reader, req: Request) -> None:
    if r.peek() != 0x28:
        if r.atom().upper() != "NIL":
            raise CommandSyntaxError("ID needs a list or NIL")
        return
    r.open_list()
    if not r.maybe(b")"):
        while True:
            key = r.string()
            r.space()
            value = r.nstring_or_atom()
            req.params[key.decode("utf-8", "replace")] = value
            if len(req.params) > 30:
                raise CommandSyntaxError("too many ID fields")
            if r.maybe(b")"):
                break
            r.space()
    r.depth -= 1


def _args(verb: str, r: Reader, req: Request) -> None:
    if verb in _NO_ARGS and not (verb == "EXPUNGE" and req.uid):
        return
    r.space()
    if verb == "LOGIN":
        req.strings = [r.astring()]
        r.space()
        req.strings.append(r.astring())
    elif verb == "AUTHENTICATE":
        req.atoms = [r.atom().upper()]
        if r.maybe(b" "):
            req.initial_response = r.rest()
    elif verb in ("SELECT", "EXAMINE"):
        req.mailbox = r.mailbox()
        if r.maybe(b" "):
            _select_params(r, req)
    elif verb in ("CREATE", "DELETE", "SUBSCRIBE", "UNSUBSCRIBE"):
        req.mailbox = r.mailbox()
        if r.maybe(b" "):
            req.atoms = _paren_atoms(r)
    elif verb == "RENAME":
        req.mailbox = r.mailbox()
        r.space()
        req.mailbox2 = r.mailbox()
    elif verb in ("LIST", "LSUB"):
        _list(r, req)
    elif verb == "STATUS":
        req.mailbox = r.mailbox()
        r.space()
        req.atoms = _paren_atoms(r)
    elif verb == "APPEND":
        _append(r, req)
    elif verb == "SEARCH":
        _search(r, req)
    elif verb == "FETCH":
        req.sequence = r.sequence_set()
        r.space()
        req.fetch = parse_fetch_atts(r)
        if r.maybe(b" "):
            _fetch_modifiers(r, req)
    elif verb == "STORE":
        _store(r, req)
    elif verb in ("COPY", "MOVE"):
        req.sequence = r.sequence_set()
        r.space()
        req.mailbox = r.mailbox()
    elif verb == "EXPUNGE":  # UID EXPUNGE
        req.sequence = r.sequence_set(allow_last=True)
    elif verb == "ID":
        _id(r, req)
    elif verb == "ENABLE":
        req.atoms = [r.atom().upper()]
        while r.maybe(b" "):
            req.atoms.append(r.atom().upper())
    else:
        raise CommandSyntaxError("unknown command")


#: Verbs with arguments or without; ``UID`` prefixes the last group.
KNOWN_VERBS = _NO_ARGS | {
    "LOGIN", "AUTHENTICATE", "SELECT", "EXAMINE", "CREATE", "DELETE", "SUBSCRIBE",
    "UNSUBSCRIBE", "RENAME", "LIST", "LSUB", "STATUS", "APPEND", "SEARCH", "FETCH", "STORE",
    "COPY", "MOVE", "ID", "ENABLE",
}  # fmt: skip
_UID_VERBS = frozenset({"FETCH", "SEARCH", "STORE", "COPY", "MOVE", "EXPUNGE"})

Validator = Callable[[Request], None]


def parse_command(segments: Sequence[object], max_depth: int = 32) -> Request:
    """Parse a whole command; raise :class:`CommandSyntaxError` (with the tag when known)."""
    r = Reader(segments, max_depth)
    try:
        tag = r.tag()
    except CommandSyntaxError:
        raise CommandSyntaxError("bad tag", None) from None
    try:
        r.space()
        verb = r.atom().upper()
        uid = False
        if verb == "UID":
            r.space()
            verb = r.atom().upper()
            uid = True
            if verb not in _UID_VERBS:
                raise CommandSyntaxError(f"UID {verb[:20]} is not a command")
        elif verb not in KNOWN_VERBS:
            raise CommandSyntaxError("unknown command")
        req = Request(tag, verb, uid)
        if verb == "EXPUNGE" and not uid:
            r.end()
            return req
        _args(verb, r, req)
        r.end()
        return req
    except CommandSyntaxError as e:
        e.tag = tag
        raise
    except (RecursionError, UnicodeDecodeError, ValueError) as e:
        raise CommandSyntaxError(f"malformed command: {type(e).__name__}", tag) from None
