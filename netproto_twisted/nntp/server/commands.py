"""The NNTP server's command table (RFC 3977, 4642, 4643, 4644, 8054 and the legacy X commands)."""

from __future__ import annotations

import enum
from typing import Any

from netproto_twisted.core.commands import Argument, Command, CommandTable

__all__ = ["NNTP_COMMANDS", "State"]


class State(enum.Enum):
    """NNTP has one command state; modes (reader, streaming) and login are facts of the session."""

    READY = "ready"


def _tls_offered(conn: Any) -> str | None:
    if conn.tls is None:
        return "STARTTLS not available"
    return "not after COMPRESS" if conn.compressed else None


def _not_compressed(conn: Any) -> str | None:
    # RFC 8054 2.2.2: no authentication once COMPRESS is active (CRIME).
    return "not after COMPRESS" if conn.compressed else None


_R = {State.READY}
_O, _Q = Argument.OPTIONAL, Argument.REQUIRED

#: The verbs, declared without handlers (the server binds its connection's methods).
NNTP_COMMANDS: CommandTable[State, Any] = CommandTable(
    [
        Command("CAPABILITIES", _R, argument=_O, help="list the capabilities"),
        Command("MODE", _R, argument=_Q, help="MODE READER or MODE STREAM"),
        Command("GROUP", _R, argument=_Q, help="select a newsgroup"),
        Command("LISTGROUP", _R, argument=_O, help="list the article numbers of a group"),
        Command("LAST", _R, help="go to the previous article"),
        Command("NEXT", _R, help="go to the next article"),
        Command("ARTICLE", _R, argument=_O, help="send an article"),
        Command("HEAD", _R, argument=_O, help="send an article's header"),
        Command("BODY", _R, argument=_O, help="send an article's body"),
        Command("STAT", _R, argument=_O, help="check that an article exists"),
        Command("POST", _R, help="post an article"),
        Command("IHAVE", _R, argument=_Q, help="offer an article (transit)", capability="IHAVE"),
        Command("CHECK", _R, argument=_Q, help="ask whether an article is wanted (streaming)"),
        Command("TAKETHIS", _R, argument=_Q, help="send an article (streaming)"),
        Command("NEWGROUPS", _R, argument=_Q, help="groups created since a date"),
        Command("NEWNEWS", _R, argument=_Q, help="articles arrived since a date",
                capability="NEWNEWS"),
        Command("DATE", _R, help="the server's time"),
        Command("HELP", _R, help="this text"),
        Command("LIST", _R, argument=_O, help="ACTIVE, ACTIVE.TIMES, COUNTS, NEWSGROUPS, "
                "OVERVIEW.FMT, HEADERS, DISTRIB.PATS, DISTRIBUTIONS, MODERATORS, MOTD, "
                "SUBSCRIPTIONS"),
        Command("OVER", _R, argument=_O, help="overview of articles", capability="OVER MSGID"),
        Command("XOVER", _R, argument=_O, help="overview of articles (legacy)"),
        Command("HDR", _R, argument=_Q, help="one header of articles", capability="HDR"),
        Command("XHDR", _R, argument=_Q, help="one header of articles (legacy)"),
        Command("XPAT", _R, argument=_Q, help="articles whose header matches (legacy)"),
        Command("STARTTLS", _R, guard=_tls_offered, refused_when_secure=True,
                refused_when_authenticated=True, help="start TLS", capability="STARTTLS"),
        Command("AUTHINFO", _R, argument=_Q, refused_when_authenticated=True,
                guard=_not_compressed, help="USER, PASS or SASL"),
        Command("COMPRESS", _R, argument=_Q, help="COMPRESS DEFLATE (RFC 8054)"),
        Command("QUIT", _R, help="end the session"),
    ],
    unknown_text="unknown command",
    sequence_text="command not permitted now",
    argument_forbidden_text="{verb} takes no argument",
    argument_missing_text="{verb} needs an argument",
    secure_text="TLS already active",
    authenticated_text="already authenticated",
    auth_text="authentication required",
)  # fmt: skip
