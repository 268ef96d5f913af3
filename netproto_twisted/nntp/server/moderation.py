"""Moderated groups: a POST without ``Approved`` is mailed to the moderator (RFC 5537 3.5.1).

A group whose status is ``m`` does not file what readers post to it.  When
an article names moderated groups (the first one, left to right, decides)
and has no ``Approved`` header, the server:

1. prepares the *proto-article* as RFC 5537 3.5 forwards it: Date and
   Message-ID added when missing, no Path, Injection-Date or
   Injection-Info (those are added when the moderator posts it back);
2. mails it as it stands -- of RFC 5537 3.5.1's two forms, not the
   encapsulated one, which few moderators' tools read -- adding only a
   ``To`` header naming the moderator when it has none, through the SMTP
   client to the configured relay (by default our own SMTP server on
   ``localhost:2525``);
3. answers ``240`` only once the relay accepted the message (``250``
   after DATA); if the relay refuses it or cannot be reached the poster
   gets ``441`` and nothing is kept: the server has no mail queue of its
   own; the relay's queue is the durable one.

An article *with* ``Approved`` is filed when the poster's login is one of
the ``approvers`` (``*``: any logged-in user), and refused with ``441``
otherwise.

The moderator of a group is its entry in the ``moderators`` table of the
news database (``netproto news group add NAME --moderator ADDRESS``), or
else the address the ``moderator_pattern`` makes: INN's convention, ``%s``
replaced by the group name with its dots turned into dashes
(``%s@moderators.example.org``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger

from netproto_twisted.core.errors import NetprotoError
from netproto_twisted.nntp._wire import (
    ArticleFormatError,
    Code,
    header_value,
    parse_headers,
    split_article,
    wildmat,
)
from netproto_twisted.nntp.server.articles import ArticleRefused, prepare_post
from netproto_twisted.smtp.client import send_mail
from netproto_twisted.smtp.errors import SMTPError

if TYPE_CHECKING:
    from netproto_twisted.nntp.server.session import SessionBase

__all__ = [
    "DEFAULT_RELAY",
    "Moderation",
    "ModerationError",
    "ModeratorDirectory",
    "create_schema",
    "moderate_post",
    "pattern_address",
    "set_moderator",
]

_log = Logger(namespace="netproto.nntp.moderation")

#: The relay by default: the combined daemon's own SMTP server (DESIGN 1: port 2525).
DEFAULT_RELAY = "localhost:2525"

_SCHEMA = "CREATE TABLE IF NOT EXISTS moderators(grp TEXT PRIMARY KEY, address TEXT NOT NULL)"


class ModerationError(NetprotoError):
    """The article could not be handed to the moderator (the text says why)."""


def create_schema(db: sqlite3.Connection) -> None:
    """Create the ``moderators`` table in a news database if it is missing."""
    db.execute(_SCHEMA)


def set_moderator(db: sqlite3.Connection, group: str, address: str | None) -> None:
    """Set (or, with ``None``, remove) the moderator address of ``group``."""
    create_schema(db)
    if address is None:
        db.execute("DELETE FROM moderators WHERE grp=?", (group,))
        return
    if not address or any(c in address for c in "\r\n\t <>,") or "@" not in address:
        raise ValueError(f"bad moderator address {address!r}")
    db.execute(
        "INSERT INTO moderators(grp, address) VALUES(?,?) "
        "ON CONFLICT(grp) DO UPDATE SET address=excluded.address",
        (group, address),
    )


def pattern_address(pattern: str, group: str) -> str:
    """INN's moderator address: ``%s`` in ``pattern`` is the group, dots made dashes."""
    return pattern.replace("%s", group.replace(".", "-"))


class ModeratorDirectory:
    """Who moderates a group: the ``moderators`` table, the moderators file, then the pattern.

    :param database: the news database (``None``: no table).
    :param pattern: e.g. ``%s@moderators.example.org`` (``""``: none).
    :param patterns: ``(wildmat, address)`` pairs of INN's ``moderators`` file
        (the one LIST MODERATORS shows); the first whose wildmat matches wins.
    """

    def __init__(
        self,
        database: str | None,
        pattern: str = "",
        patterns: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.pattern = pattern
        self.patterns = [(wildmat(w), address) for w, address in patterns]
        self.db: sqlite3.Connection | None = None
        if database is not None:
            self.db = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
            create_schema(self.db)

    def address(self, group: str) -> str | None:
        """The moderator of ``group``, or ``None`` when nobody is known."""
        if self.db is not None:
            row = self.db.execute(
                "SELECT address FROM moderators WHERE grp=?", (group,)
            ).fetchone()
            if row is not None:
                return str(row[0])
        for matches, address in self.patterns:
            if matches(group):
                return pattern_address(address, group)
        if self.pattern:
            return pattern_address(self.pattern, group)
        return None

    def close(self) -> None:
        """Close the database connection."""
        if self.db is not None:
            self.db.close()
            self.db = None


def submission(article: bytes, moderator: str) -> bytes:
    """The mail to the moderator: the proto-article, with ``To`` added when it has none."""
    head, _, _ = article.partition(b"\r\n\r\n")
    try:
        has_to = header_value(parse_headers(head + b"\r\n"), "To") is not None
    except ArticleFormatError:  # pragma: no cover - checked before
        has_to = False
    if has_to:
        return article
    return f"To: {moderator}\r\n".encode() + article


class Moderation:
    """Mails proto-articles to moderators through an SMTP relay.

    :param reactor: connects to the relay.
    :param directory: finds a group's moderator.
    :param relay: ``host:port`` of the SMTP relay.
    :param sender: the envelope sender (where bounces go).
    :param tls: the SMTP client's TLS mode towards the relay.
    :param timeout: seconds for the connection and each reply.
    """

    def __init__(
        self,
        reactor: Any,
        directory: ModeratorDirectory,
        *,
        relay: str = DEFAULT_RELAY,
        sender: str = "news@localhost",
        tls: str = "none",
        timeout: float = 60.0,
    ) -> None:
        host, sep, port = relay.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"the moderation relay is host:port, not {relay!r}")
        self.reactor = reactor
        self.directory = directory
        self.relay = (host.strip("[]"), int(port))
        self.sender = sender
        self.tls = tls
        self.timeout = timeout

    def submit(self, group: str, article: bytes) -> Deferred[str]:
        """Mail ``article`` to the moderator of ``group``; fire with the address once accepted.

        Fails with :class:`ModerationError` (no moderator known, the relay refused or is down).
        """
        return ensureDeferred(self._submit(group, article))

    async def _submit(self, group: str, article: bytes) -> str:
        address = self.directory.address(group)
        if address is None:
            raise ModerationError(f"no moderator known for {group}")
        host, port = self.relay
        try:
            await send_mail(
                self.reactor,
                host,
                port,
                self.sender,
                [address],
                submission(article, address),
                tls=self.tls,
                timeout=self.timeout,
            )
        except (SMTPError, NetprotoError, OSError) as e:
            _log.warn(
                "cannot mail the moderator of {group} ({address}) via {host}:{port}: {error}",
                group=group,
                address=address,
                host=host,
                port=port,
                error=e,
            )
            raise ModerationError(f"cannot reach the moderator of {group} now") from e
        return address


def _approved(data: bytes) -> bool:
    try:
        head, _ = split_article(data)
        return header_value(parse_headers(head), "Approved") is not None
    except ArticleFormatError:  # pragma: no cover - prepare_post checked it
        return False


def may_approve(session: SessionBase) -> bool:
    """Whether the session's user may post ``Approved`` articles to moderated groups."""
    approvers: Sequence[str] = session.settings.approvers
    user = session.username
    return user is not None and ("*" in approvers or user in approvers)


async def moderate_post(session: SessionBase, group: str, data: bytes) -> bool:
    """A POST to the moderated ``group``: True to file it (approved), else it is answered here."""
    if _approved(data):
        if may_approve(session):
            return True
        session.reply(Code.POSTING_FAILED, "you are not allowed to approve articles")
        return False
    moderation: Moderation | None = session.moderation
    if moderation is None:
        session.reply(Code.POSTING_FAILED, f"{group} is moderated; mail the moderator")
        return False
    settings = session.settings
    try:
        prepared = prepare_post(
            data,
            path_host=settings.path_host,
            domain=settings.domain,
            now=session.now(),
            inject=False,
        )
    except ArticleRefused as e:  # pragma: no cover - prepare_post passed already
        session.reply(Code.POSTING_FAILED, str(e))
        return False
    try:
        address = await moderation.submit(group, prepared.data)
    except ModerationError as e:
        session.reply(Code.POSTING_FAILED, str(e))
        return False
    _log.info(
        "{mid} for {group} mailed to its moderator {address}",
        mid=prepared.message_id,
        group=group,
        address=address,
    )
    session.reply(Code.POSTED, f"article sent to the moderator of {group} {prepared.message_id}")
    return False
