"""The news server's backend contract: an article store with groups, overview and history.

:class:`INewsStore` is what the server needs; :class:`~netproto_twisted.nntp.store.SQLiteNewsStore`
is the embedded implementation.  A store for several machines (PostgreSQL,
object storage) implements the same interface.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

__all__ = [
    "Article",
    "GroupInfo",
    "History",
    "INewsStore",
    "IOverviewCursor",
    "Incoming",
    "StoreOutcome",
    "StoreResult",
]


@dataclass(frozen=True)
class GroupInfo:
    """One newsgroup: its article numbers (low/high/count), status and description.

    :ivar status: ``"y"`` posting allowed, ``"n"`` not, ``"m"`` moderated (RFC 3977 7.6.3).
    :ivar created: UNIX time of creation (``LIST ACTIVE.TIMES``, ``NEWGROUPS``).
    :ivar expire_days: articles older than this are expired (``None``: the store's default).
    """

    name: str
    low: int
    high: int
    count: int
    status: str = "y"
    created: float = 0.0
    creator: str = ""
    description: str = ""
    expire_days: float | None = None


@dataclass(frozen=True)
class Article:
    """A stored article: its Message-ID, its number in the group asked about, its bytes.

    ``data`` has CRLF line endings and is not dot-stuffed.
    """

    message_id: str
    number: int
    data: bytes


@dataclass(frozen=True)
class Incoming:
    """An article to store, already checked and parsed by the server.

    :ivar overview: the seven RFC 3977 overview fields (Subject to :lines), sanitised.
    """

    message_id: str
    data: bytes
    groups: Sequence[str]
    overview: Sequence[str]
    arrived: float


class StoreOutcome(enum.Enum):
    """What became of an :class:`Incoming` article."""

    STORED = "stored"
    #: Its Message-ID is in the history (stored now, or expired).
    DUPLICATE = "duplicate"
    #: None of its newsgroups is carried here.
    NO_GROUPS = "no-groups"


@dataclass(frozen=True)
class StoreResult:
    """The outcome, and where the article was filed: ``(group, number)`` pairs."""

    outcome: StoreOutcome
    numbers: Sequence[tuple[str, int]] = ()


class History(enum.Enum):
    """What the history says about a Message-ID."""

    UNKNOWN = "unknown"
    STORED = "stored"
    EXPIRED = "expired"
    #: Being stored now (offered again before the first copy is on disk): "try later".
    IN_FLIGHT = "in-flight"


class IOverviewCursor(Interface):
    """Overview lines of one range, read in blocks (blocking: run ``read`` in a thread)."""

    def read(size: int) -> bytes:  # noqa: N805
        """The next OVER lines (``number TAB fields CRLF``), about ``size`` bytes; b"" at end."""

    def close() -> None:
        """Release the cursor."""


class INewsStore(Interface):
    """Groups, articles, overview and the Message-ID history."""

    path_host = Attribute("the name this server adds to Path headers")

    def groups() -> Deferred[list[GroupInfo]]:
        """Every group, sorted by name."""

    def group(name: str) -> Deferred[GroupInfo | None]:  # noqa: N805
        """One group, or ``None``."""

    def numbers(group: str, low: int, high: int | None) -> Deferred[list[int]]:  # noqa: N805
        """The article numbers present in ``group`` within ``low..high``."""

    def neighbour(group: str, number: int, forward: bool) -> Deferred[int | None]:  # noqa: N805
        """The next (or previous) article number present after ``number``, or ``None``."""

    def article(group: str, number: int) -> Deferred[Article | None]:  # noqa: N805
        """The article ``number`` of ``group``, or ``None``."""

    def article_by_id(message_id: str) -> Deferred[Article | None]:  # noqa: N805
        """The article with this Message-ID (``number`` 0), or ``None``."""

    def open_overview(group: str, low: int, high: int | None) -> IOverviewCursor:  # noqa: N805
        """A cursor over the overview lines of a range (nothing read yet)."""

    def header_values(
        group: str,  # noqa: N805
        low: int,
        high: int | None,
        header: str,
        limit: int,
    ) -> Deferred[list[tuple[int, str]]]:
        """``(number, value)`` of one header for up to ``limit`` articles of a range."""

    def history(message_id: str) -> Deferred[History]:  # noqa: N805
        """What the history knows of a Message-ID."""

    def store(article: Incoming) -> Deferred[StoreResult]:  # noqa: N805
        """File an article; fires once it is durably on disk."""

    def new_groups(since: float) -> Deferred[list[GroupInfo]]:  # noqa: N805
        """The groups created at or after ``since``."""

    def new_news(since: float) -> Deferred[list[tuple[str, Sequence[str]]]]:  # noqa: N805
        """``(Message-ID, groups)`` of the articles arrived at or after ``since``."""
