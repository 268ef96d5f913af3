"""The IMAP client: imaplib's commands as Deferreds of parsed results, and :func:`connect_imap`.

Every method returns a Deferred (usable with ``await``); ``NO``/``BAD``
fail it with :class:`~netproto_twisted.imap4.errors.IMAPReplyError`.
Results are parsed: ``fetch`` gives ``{number: {"FLAGS": (...), "ENVELOPE":
Envelope(...), ...}}``, ``search`` a list of numbers, ``list`` a list of
:class:`MailboxEntry`, ``select`` a :class:`MailboxInfo`.  Mailbox names are
``str`` (modified UTF-7 on the wire, done here).  ``uid=True`` gives the UID
variant of FETCH, SEARCH, STORE, COPY, MOVE and EXPUNGE.
"""

from __future__ import annotations

import builtins
import datetime
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from typing import Literal as TypingLiteral

from twisted.internet.defer import Deferred, DeferredQueue, ensureDeferred
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.error import ConnectError, DNSLookupError
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory

from netproto_twisted.core.sasl import (
    choose_mechanism,
    client_mechanism,
    decode_challenge,
    encode_response,
)
from netproto_twisted.core.tls import client_options
from netproto_twisted.imap4.client.protocol import IMAPClientProtocol, Literal, Reply
from netproto_twisted.imap4.client.results import (
    ConditionalStore,
    FetchChanges,
    MailboxEntry,
    MailboxInfo,
)
from netproto_twisted.imap4.errors import IMAPConnectionLost, IMAPError
from netproto_twisted.imap4.wire.mutf7 import mutf7_decode, mutf7_encode
from netproto_twisted.imap4.wire.responses import Untagged, Vanished, parse_uid_ranges
from netproto_twisted.imap4.wire.serialise import format_date_time

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TLS_PORT",
    "ConditionalStore",
    "FetchChanges",
    "IMAPClient",
    "IdleSession",
    "MailboxEntry",
    "MailboxInfo",
    "connect_imap",
]

DEFAULT_PORT = 143
DEFAULT_TLS_PORT = 993
TLSMode = TypingLiteral["starttls", "implicit", "opportunistic", "none"]
_TLS_MODES = ("starttls", "implicit", "opportunistic", "none")
_ATOM = re.compile(rb"[!#$&'+,\-./0-9:;<=>?@A-Z^_`a-z|}~]+\Z")
_MODES = {"+": b"+FLAGS", "-": b"-FLAGS", "": b"FLAGS"}


@dataclass
class IdleSession:
    """A running IDLE: :meth:`next` gives each notification; :meth:`done` ends it.

    :ivar updates: the untagged responses received so far, in a queue.
    """

    client: IMAPClient
    finished: Deferred[Reply]
    updates: DeferredQueue[Untagged] = field(default_factory=DeferredQueue)

    def next(self) -> Deferred[Untagged]:
        """Fire with the next notification (``* 3 EXISTS``, ``* 1 EXPUNGE``, ``FETCH`` ...)."""
        return self.updates.get()

    def done(self) -> Deferred[Reply]:
        """Send ``DONE``; fire when the server completed IDLE."""
        self.client.protocol.unsolicited = None
        self.client.protocol.send_line(b"DONE")
        return self.finished


def astring(value: str | bytes, utf8: bool = False) -> bytes | Literal:
    """An argument: atom when possible, else quoted, else a literal."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    if data and _ATOM.match(data):
        return data
    if data.isascii() and not any(c in data for c in b"\r\n\x00") and len(data) < 1000:
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return Literal(data)


def quoted(value: str | bytes) -> bytes | Literal:
    """A string argument (never an atom): quoted, or a literal."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    if data.isascii() and not any(c in data for c in b"\r\n\x00") and len(data) < 1000:
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return Literal(data)


def message_set(value: str | int | Iterable[int]) -> bytes:
    """``"1:*"``, ``5`` or ``[1, 2, 3, 7]`` as a sequence set."""
    if isinstance(value, str):
        return value.encode("ascii")
    if isinstance(value, int):
        return b"%d" % value
    numbers = sorted(set(value))
    if not numbers:
        raise ValueError("an empty message set")
    out: list[str] = []
    i = 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        out.append(str(numbers[i]) if i == j else f"{numbers[i]}:{numbers[j]}")
        i = j + 1
    return ",".join(out).encode("ascii")


def _join(parts: Sequence[bytes | Literal]) -> list[bytes | Literal]:
    out: list[bytes | Literal] = []
    for i, part in enumerate(parts):
        if i:
            out.append(b" ")
        out.append(part)
    return out


class IMAPClient:
    """A connected IMAP session (see the module docstring).

    :ivar capabilities: the server's capabilities (upper case), as last seen.
    :ivar greeting: the greeting's text.
    """

    def __init__(self, protocol: IMAPClientProtocol, greeting: Untagged, host: str) -> None:
        self.protocol = protocol
        self.host = host
        self.greeting = greeting.text
        self.capabilities: frozenset[str] = frozenset()
        if greeting.code == "CAPABILITY" and greeting.code_data:
            self._set_caps(greeting.code_data.split())
        self.utf8 = False
        #: ENABLE QRESYNC (or CONDSTORE) succeeded.
        self.qresync = False
        self.condstore = False
        self.state = "AUTH" if greeting.kind == "PREAUTH" else "NONAUTH"

    def _set_caps(self, caps: Iterable[str]) -> None:
        self.capabilities = frozenset(c.upper() for c in caps)
        self.protocol.literal_plus = "LITERAL+" in self.capabilities

    @property
    def is_secure(self) -> bool:
        """Whether TLS is on."""
        return self.protocol.is_secure

    # -- plumbing -----------------------------------------------------------------------

    def _run(self, *parts: bytes | Literal, **kw: Any) -> Deferred[Reply]:
        d = self.protocol.command(*_join(parts), **kw)

        def note(reply: Reply) -> Reply:
            for u in reply.of("CAPABILITY"):
                self._set_caps(u.data)
            if reply.tagged.code == "CAPABILITY" and reply.tagged.code_data:
                self._set_caps(reply.tagged.code_data.split())
            return reply

        return d.addCallback(note)

    def mailbox(self, name: str) -> bytes | Literal:
        """A mailbox name as an argument (modified UTF-7 unless UTF8=ACCEPT is enabled)."""
        if self.utf8:
            return astring(name.encode("utf-8"))
        return astring(mutf7_encode(name))

    def _name(self, raw: bytes) -> str:
        text = raw.decode("utf-8", "replace")
        if self.utf8:
            return text
        try:
            return mutf7_decode(text)
        except ValueError:
            return text

    # -- any state ----------------------------------------------------------------------

    def capability(self) -> Deferred[frozenset[str]]:
        """``CAPABILITY``."""
        return self._run(b"CAPABILITY").addCallback(lambda _: self.capabilities)

    def noop(self) -> Deferred[list[Untagged]]:
        """``NOOP``: fire with the untagged responses (changes of the selected mailbox)."""
        return self._run(b"NOOP").addCallback(lambda r: r.untagged)

    def logout(self) -> Deferred[None]:
        """``LOGOUT``; fires once the connection closed."""
        d = self._run(b"LOGOUT")
        return d.addBoth(lambda _: self.protocol.when_closed())

    def id(self, params: dict[str, str] | None = None) -> Deferred[dict[str, str | None]]:
        """``ID`` (RFC 2971): fire with the server's parameters."""
        if params:
            items: list[bytes | Literal] = []
            for k, v in params.items():
                items += [quoted(k), quoted(v)]
            arg: list[bytes | Literal] = [b"(", *_join(items), b")"]
        else:
            arg = [b"NIL"]
        d = self.protocol.command(b"ID ", *arg)
        return d.addCallback(lambda r: next((u.data for u in r.of("ID")), {}))

    def enable(self, *capabilities: str) -> Deferred[tuple[str, ...]]:
        """``ENABLE`` (RFC 5161): fire with what the server enabled."""
        d = self._run(b"ENABLE", *(c.encode() for c in capabilities))

        def enabled(reply: Reply) -> tuple[str, ...]:
            names: tuple[str, ...] = tuple(x for u in reply.of("ENABLED") for x in u.data)
            if "UTF8=ACCEPT" in names:
                self.utf8 = True
            if "QRESYNC" in names:
                self.qresync = self.condstore = True
            if "CONDSTORE" in names:
                self.condstore = True
            return names

        return d.addCallback(enabled)

    # -- login --------------------------------------------------------------------------

    def starttls(self, options: IOpenSSLClientConnectionCreator | None = None) -> Deferred[Reply]:
        """``STARTTLS``, then the handshake (verifying ``host`` by default)."""
        if options is None:
            options = client_options(self.host)

        def go(reply: Reply) -> Deferred[Reply]:
            self.protocol.start_tls(options, server=False)
            self.capabilities = frozenset()
            return self._run(b"CAPABILITY")

        return self._run(b"STARTTLS").addCallback(go)

    def login(self, username: str, password: str) -> Deferred[Reply]:
        """``LOGIN``."""
        d = self._run(b"LOGIN", astring(username), astring(password))
        return d.addCallback(self._authed)

    def _authed(self, reply: Reply) -> Reply | Deferred[Reply]:
        self.state = "AUTH"
        if reply.tagged.code == "CAPABILITY":
            return reply
        return self._run(b"CAPABILITY")

    def authenticate(
        self,
        username: str,
        password: str,
        mechanism: str | None = None,
        *,
        allow_insecure: bool = False,
    ) -> Deferred[Reply]:
        """``AUTHENTICATE`` (PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256), with SASL-IR when offered."""
        offered = [c[5:] for c in self.capabilities if c.startswith("AUTH=")]
        name = mechanism or choose_mechanism(
            offered, self.is_secure, allow_plaintext_insecure=allow_insecure
        )
        mech = client_mechanism(name, username, password)
        parts: list[bytes | Literal] = [b"AUTHENTICATE", mech.name.encode()]
        initial = mech.initial_response()
        if initial is not None and "SASL-IR" in self.capabilities:
            parts.append(encode_response(initial, initial=True))
            initial = None
        pending_initial = [initial]

        def answer(text: bytes) -> bytes:
            if pending_initial[0] is not None:
                data, pending_initial[0] = pending_initial[0], None
                return encode_response(data)
            return encode_response(mech.respond(decode_challenge(text)))

        return self._run(*parts, continuation=answer).addCallback(self._authed)

    # -- mailboxes ----------------------------------------------------------------------

    def select(
        self,
        mailbox: str = "INBOX",
        readonly: bool = False,
        *,
        condstore: bool = False,
        qresync: tuple[int, int] | None = None,
        known_uids: str | Iterable[int] | None = None,
    ) -> Deferred[MailboxInfo]:
        """``SELECT`` (``EXAMINE`` when ``readonly``).

        ``condstore``: the ``(CONDSTORE)`` parameter (RFC 7162).  ``qresync``:
        ``(uidvalidity, highest modseq)`` cached from an earlier session, for
        ``(QRESYNC (...))`` (after :meth:`enable` ``("QRESYNC")``), optionally
        with the ``known_uids``; the answer's :attr:`MailboxInfo.vanished` and
        :attr:`MailboxInfo.changed` then say what changed since.
        """
        verb = b"EXAMINE" if readonly else b"SELECT"
        params: list[bytes] = []
        if condstore:
            params.append(b"CONDSTORE")
        if qresync is not None:
            inner = b"%d %d" % qresync
            if known_uids is not None:
                inner += b" " + message_set(known_uids)
            params.append(b"QRESYNC (" + inner + b")")

        def info(reply: Reply) -> MailboxInfo:
            out = MailboxInfo(read_only=reply.tagged.code == "READ-ONLY")
            for u in reply.untagged:
                if u.kind == "EXISTS":
                    out.exists = u.number or 0
                elif u.kind == "RECENT":
                    out.recent = u.number or 0
                elif u.kind == "FLAGS":
                    out.flags = u.data
                elif u.kind == "OK" and u.code:
                    data = u.code_data or ""
                    if u.code == "UIDVALIDITY":
                        out.uid_validity = int(data)
                    elif u.code == "UIDNEXT":
                        out.uid_next = int(data)
                    elif u.code == "UNSEEN":
                        out.unseen = int(data)
                    elif u.code == "PERMANENTFLAGS":
                        out.permanent_flags = tuple(data.strip("()").split())
                    elif u.code == "HIGHESTMODSEQ":
                        out.highest_modseq = int(data)
                    elif u.code == "NOMODSEQ":
                        out.highest_modseq = None
                elif u.kind == "VANISHED":
                    out.vanished += u.data.ranges
                elif u.kind == "FETCH" and u.data and "UID" in u.data:
                    out.changed.setdefault(int(u.data["UID"]), {}).update(u.data)
            self.state = "SELECTED"
            return out

        parts: list[bytes | Literal] = [verb, self.mailbox(mailbox)]
        if params:
            parts.append(b"(" + b" ".join(params) + b")")
        return self._run(*parts).addCallback(info)

    def examine(self, mailbox: str = "INBOX") -> Deferred[MailboxInfo]:
        """``EXAMINE``."""
        return self.select(mailbox, readonly=True)

    def create(self, mailbox: str) -> Deferred[Reply]:
        """``CREATE``."""
        return self._run(b"CREATE", self.mailbox(mailbox))

    def delete(self, mailbox: str) -> Deferred[Reply]:
        """``DELETE``."""
        return self._run(b"DELETE", self.mailbox(mailbox))

    def rename(self, old: str, new: str) -> Deferred[Reply]:
        """``RENAME``."""
        return self._run(b"RENAME", self.mailbox(old), self.mailbox(new))

    def subscribe(self, mailbox: str) -> Deferred[Reply]:
        """``SUBSCRIBE``."""
        return self._run(b"SUBSCRIBE", self.mailbox(mailbox))

    def unsubscribe(self, mailbox: str) -> Deferred[Reply]:
        """``UNSUBSCRIBE``."""
        return self._run(b"UNSUBSCRIBE", self.mailbox(mailbox))

    def list(
        self, reference: str = "", pattern: str = "*"
    ) -> Deferred[builtins.list[MailboxEntry]]:
        """``LIST``."""
        return self._list(b"LIST", reference, pattern)

    def lsub(
        self, reference: str = "", pattern: str = "*"
    ) -> Deferred[builtins.list[MailboxEntry]]:
        """``LSUB``."""
        return self._list(b"LSUB", reference, pattern)

    def _list(
        self, verb: bytes, reference: str, pattern: str
    ) -> Deferred[builtins.list[MailboxEntry]]:
        d = self._run(verb, self.mailbox(reference) if reference else b'""', self.mailbox(pattern))
        return d.addCallback(
            lambda r: [
                MailboxEntry(u.data[0], u.data[1], self._name(u.data[2]))
                for u in r.of(verb.decode())
            ]
        )

    def status(
        self, mailbox: str, items: Sequence[str] = ("MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN")
    ) -> Deferred[dict[str, int]]:
        """``STATUS``: ``{"MESSAGES": 3, ...}``."""
        d = self._run(b"STATUS", self.mailbox(mailbox), ("(" + " ".join(items) + ")").encode())
        return d.addCallback(lambda r: next((u.data[1] for u in r.of("STATUS")), {}))

    def namespace(self) -> Deferred[Any]:
        """``NAMESPACE``: ``[personal, other, shared]`` as parsed lists."""
        return self._run(b"NAMESPACE").addCallback(
            lambda r: next((u.data for u in r.of("NAMESPACE")), None)
        )

    def append(
        self,
        mailbox: str,
        message: bytes,
        flags: Iterable[str] = (),
        date: datetime.datetime | float | None = None,
    ) -> Deferred[tuple[int, int] | None]:
        """``APPEND`` (a literal): fire with ``(UIDVALIDITY, UID)`` from APPENDUID, or None."""
        parts: list[bytes | Literal] = [b"APPEND", self.mailbox(mailbox)]
        flag_list = list(flags)
        if flag_list:
            parts.append(("(" + " ".join(flag_list) + ")").encode())
        if date is not None:
            parts.append(format_date_time(date).encode())
        parts.append(Literal(message))
        return self._run(*parts).addCallback(_appenduid)

    # -- selected -----------------------------------------------------------------------

    def check(self) -> Deferred[Reply]:
        """``CHECK``."""
        return self._run(b"CHECK")

    def close(self) -> Deferred[Reply]:
        """``CLOSE``."""
        return self._run(b"CLOSE")

    def unselect(self) -> Deferred[Reply]:
        """``UNSELECT``."""
        return self._run(b"UNSELECT")

    def expunge(self, uids: str | Iterable[int] | None = None) -> Deferred[builtins.list[int]]:
        """``EXPUNGE`` (``UID EXPUNGE`` with ``uids``): fire with the expunged numbers.

        Once QRESYNC is enabled the server answers ``VANISHED``: these are UIDs.
        """
        parts = [b"EXPUNGE"] if uids is None else [b"UID", b"EXPUNGE", message_set(uids)]

        def numbers(reply: Reply) -> builtins.list[int]:
            vanished = [uid for u in reply.of("VANISHED") for uid in u.data.uids()]
            return vanished or [u.number or 0 for u in reply.of("EXPUNGE")]

        return self._run(*parts).addCallback(numbers)

    def search(
        self, *criteria: str | bytes, uid: bool = False, charset: str | None = None,
        returns: Sequence[str] | None = None,
    ) -> Deferred[Any]:  # fmt: skip
        """``SEARCH``: a list of numbers; with ``returns`` (ESEARCH) a dict."""
        parts: list[bytes | Literal] = [b"UID", b"SEARCH"] if uid else [b"SEARCH"]
        if returns is not None:
            parts.append(b"RETURN (" + " ".join(returns).encode() + b")")
        if charset:
            parts += [b"CHARSET", charset.encode()]
        for c in criteria or ("ALL",):
            if isinstance(c, str) and c.isascii():
                parts.append(c.encode())
            else:
                parts.append(Literal(c.encode("utf-8") if isinstance(c, str) else c))

        def result(reply: Reply) -> Any:
            es = reply.of("ESEARCH")
            if es:
                return es[0].data
            return [n for u in reply.of("SEARCH") for n in u.data]

        return self._run(*parts).addCallback(result)

    def fetch(
        self, messages: str | int | Iterable[int], items: str | Sequence[str], *,
        uid: bool = False, changed_since: int | None = None,
    ) -> Deferred[dict[int, dict[str, Any]]]:  # fmt: skip
        """``FETCH``: ``{seq (or UID with uid=True): {item: parsed value}}``.

        ``changed_since``: only the messages whose modseq is above it (CONDSTORE).
        """
        spec = items if isinstance(items, str) else "(" + " ".join(items) + ")"
        parts = [b"UID", b"FETCH"] if uid else [b"FETCH"]
        extra = [b"(CHANGEDSINCE %d)" % changed_since] if changed_since is not None else []
        d = self._run(*parts, message_set(messages), spec.encode(), *extra)
        return d.addCallback(lambda r: _fetched(r, uid))

    def fetch_changes(
        self, uids: str | int | Iterable[int], items: str | Sequence[str], changed_since: int,
        *, vanished: bool = True,
    ) -> Deferred[FetchChanges]:  # fmt: skip
        """``UID FETCH uids items (CHANGEDSINCE n [VANISHED])`` (``VANISHED`` needs QRESYNC)."""
        spec = items if isinstance(items, str) else "(" + " ".join(items) + ")"
        modifier = b"(CHANGEDSINCE %d%s)" % (changed_since, b" VANISHED" if vanished else b"")
        d = self._run(b"UID", b"FETCH", message_set(uids), spec.encode(), modifier)

        def result(reply: Reply) -> FetchChanges:
            gone = tuple(dict.fromkeys(r for u in reply.of("VANISHED") for r in u.data.ranges))
            return FetchChanges(_fetched(reply, True), gone)

        return d.addCallback(result)

    def store(
        self, messages: str | int | Iterable[int], flags: Iterable[str], mode: str = "+",
        *, uid: bool = False, silent: bool = False,
    ) -> Deferred[dict[int, dict[str, Any]]]:  # fmt: skip
        """``STORE``: ``mode`` ``"+"``, ``"-"`` or ``""`` (replace); fire with the FETCHes."""
        item = _MODES[mode] + (b".SILENT" if silent else b"")
        parts = [b"UID", b"STORE"] if uid else [b"STORE"]
        d = self._run(*parts, message_set(messages), item, ("(" + " ".join(flags) + ")").encode())
        return d.addCallback(lambda r: _fetched(r, uid))

    def store_conditional(
        self, messages: str | int | Iterable[int], flags: Iterable[str], unchanged_since: int,
        mode: str = "+", *, uid: bool = False, silent: bool = False,
    ) -> Deferred[ConditionalStore]:  # fmt: skip
        """``STORE set (UNCHANGEDSINCE n) ...`` (CONDSTORE): messages changed since ``n`` are
        left alone and listed in :attr:`ConditionalStore.modified` (``[MODIFIED ...]``)."""
        item = _MODES[mode] + (b".SILENT" if silent else b"")
        parts = [b"UID", b"STORE"] if uid else [b"STORE"]
        d = self._run(
            *parts, message_set(messages), b"(UNCHANGEDSINCE %d)" % unchanged_since, item,
            ("(" + " ".join(flags) + ")").encode(),
        )  # fmt: skip

        def result(reply: Reply) -> ConditionalStore:
            modified: builtins.list[int] = []
            if reply.tagged.code == "MODIFIED" and reply.tagged.code_data:
                ranges = parse_uid_ranges(reply.tagged.code_data.strip())
                modified = Vanished(False, ranges).uids(limit=1_000_000)
            return ConditionalStore(_fetched(reply, uid), modified)

        return d.addCallback(result)

    def copy(
        self, messages: str | int | Iterable[int], mailbox: str, *, uid: bool = False
    ) -> Deferred[Any]:
        """``COPY``: fire with ``(uidvalidity, source set, destination set)`` (COPYUID) or None."""
        parts = [b"UID", b"COPY"] if uid else [b"COPY"]
        return self._run(*parts, message_set(messages), self.mailbox(mailbox)).addCallback(
            _copyuid
        )

    def move(
        self, messages: str | int | Iterable[int], mailbox: str, *, uid: bool = False
    ) -> Deferred[Any]:
        """``MOVE`` (RFC 6851): fire with the COPYUID data, or None."""
        parts = [b"UID", b"MOVE"] if uid else [b"MOVE"]
        return self._run(*parts, message_set(messages), self.mailbox(mailbox)).addCallback(
            _copyuid
        )

    def idle(self) -> IdleSession:
        """``IDLE`` (RFC 2177): notifications arrive until :meth:`IdleSession.done`."""
        session: IdleSession
        finished = self.protocol.command(b"IDLE", continuation=lambda _text: None)
        session = IdleSession(self, finished)
        self.protocol.unsolicited = session.updates.put
        return session


def _appenduid(reply: Reply) -> tuple[int, int] | None:
    if reply.tagged.code == "APPENDUID" and reply.tagged.code_data:
        validity, uid = reply.tagged.code_data.split()[:2]
        return int(validity), int(uid.split(",")[-1].split(":")[-1])
    return None


def _copyuid(reply: Reply) -> Any:
    codes = [(reply.tagged.code, reply.tagged.code_data)] + [
        (u.code, u.code_data) for u in reply.untagged if u.kind == "OK"
    ]
    for code, data in codes:
        if code == "COPYUID" and data:
            validity, source, dest = data.split()[:3]
            return int(validity), source, dest
    return None


def _fetched(reply: Reply, uid: bool) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for u in reply.of("FETCH"):
        items = u.data or {}
        key = items.get("UID") if uid else u.number
        if key is None:
            continue
        out.setdefault(int(key), {}).update(items)
    return out


class _ClientFactory(Factory):
    def __init__(self, clock: IReactorTime, timeout: float | None) -> None:
        self.clock = clock
        self.timeout = timeout

    def buildProtocol(self, addr: object) -> IMAPClientProtocol:
        protocol = IMAPClientProtocol(self.clock, self.timeout)
        protocol.factory = self
        return protocol


def connect_imap(
    reactor: Any,
    host: str,
    port: int | None = None,
    *,
    tls: TLSMode = "starttls",
    tls_options: IOpenSSLClientConnectionCreator | None = None,
    username: str | None = None,
    password: str | None = None,
    mechanism: str | None = None,
    timeout: float = 30.0,
    endpoint: IStreamClientEndpoint | None = None,
) -> Deferred[IMAPClient]:
    """Connect, read the greeting, secure per ``tls``, log in if a user is given.

    ``tls``: ``"starttls"`` (required), ``"implicit"`` (port 993 by default),
    ``"opportunistic"`` or ``"none"``.  ``tls_options`` default to verifying
    ``host``.  With ``username``/``password``: ``AUTHENTICATE`` with
    ``mechanism`` (or the strongest offered) when the server offers SASL
    mechanisms, else ``LOGIN``.  ``endpoint`` replaces the TCP connection.
    """
    if tls not in _TLS_MODES:
        raise ValueError(f"tls must be one of {_TLS_MODES}, not {tls!r}")
    if (username is None) != (password is None):
        raise ValueError("give both username and password, or neither")
    if port is None:
        port = DEFAULT_TLS_PORT if tls == "implicit" else DEFAULT_PORT
    options = tls_options
    if options is None and tls != "none":
        options = client_options(host)
    if endpoint is None:
        endpoint = HostnameEndpoint(reactor, host, port, timeout=timeout)
    if tls == "implicit":
        assert options is not None
        endpoint = wrapClientTLS(options, endpoint)
    target = endpoint

    async def run() -> IMAPClient:
        try:
            protocol = cast(
                IMAPClientProtocol, await target.connect(_ClientFactory(reactor, timeout))
            )
        except (ConnectError, DNSLookupError) as e:
            raise IMAPConnectionLost(f"cannot connect to {host}:{port}: {e}") from e
        try:
            greeting = await protocol.greeting
            client = IMAPClient(protocol, greeting, host)
            if not client.capabilities:
                await client.capability()
            if tls in ("starttls", "opportunistic") and not client.is_secure:
                if "STARTTLS" in client.capabilities:
                    await client.starttls(options)
                elif tls == "starttls":
                    raise IMAPError("the server does not offer STARTTLS")
            if username is not None and password is not None:
                offered = [c for c in client.capabilities if c.startswith("AUTH=")]
                if mechanism is not None or (
                    offered and "LOGINDISABLED" not in client.capabilities and tls != "none"
                ):
                    await client.authenticate(
                        username, password, mechanism, allow_insecure=tls == "none"
                    )
                else:
                    await client.login(username, password)
        except BaseException:
            protocol.lose()
            await protocol.when_closed()
            raise
        return client

    return ensureDeferred(run())
