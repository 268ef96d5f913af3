"""NNTP (RFC 3977, 4642, 4643, 4644): a news server with an embedded article store, and a client.

Server: :class:`NNTPServerFactory` over an :class:`INewsStore`
(:class:`SQLiteNewsStore`: groups, overview index, Message-ID history,
expiry, group commit), logins through core's
:class:`~netproto_twisted.core.sasl_exchange.Authenticator`; ``twistd
netproto-nntp``.  Client: :func:`connect_nntp` gives an :class:`NNTPClient`
whose methods are nntplib's, as Deferreds; :class:`Feeder` streams articles
with CHECK/TAKETHIS.  See docs/nntp.rst.
"""

from __future__ import annotations

from netproto_twisted.nntp.client import (
    DEFAULT_PORT,
    DEFAULT_TLS_PORT,
    ArticleInfo,
    Feeder,
    FeedStats,
    GroupInfo,
    GroupListing,
    NNTPClient,
    NNTPClientProtocol,
    connect_nntp,
)
from netproto_twisted.nntp.errors import (
    NNTPConnectionLost,
    NNTPError,
    NNTPPermanentError,
    NNTPProtocolError,
    NNTPReplyError,
    NNTPTemporaryError,
    NoSuchGroup,
    StoreError,
)
from netproto_twisted.nntp.interfaces import (
    Article,
    History,
    Incoming,
    INewsStore,
    IOverviewCursor,
    StoreOutcome,
    StoreResult,
)
from netproto_twisted.nntp.server import (
    NNTP_COMMANDS,
    NNTPConnection,
    NNTPServerFactory,
    NNTPSettings,
)
from netproto_twisted.nntp.store import NewsDatabase, SQLiteNewsStore

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TLS_PORT",
    "NNTP_COMMANDS",
    "Article",
    "ArticleInfo",
    "FeedStats",
    "Feeder",
    "GroupInfo",
    "GroupListing",
    "History",
    "INewsStore",
    "IOverviewCursor",
    "Incoming",
    "NNTPClient",
    "NNTPClientProtocol",
    "NNTPConnection",
    "NNTPConnectionLost",
    "NNTPError",
    "NNTPPermanentError",
    "NNTPProtocolError",
    "NNTPReplyError",
    "NNTPServerFactory",
    "NNTPSettings",
    "NNTPTemporaryError",
    "NewsDatabase",
    "NoSuchGroup",
    "SQLiteNewsStore",
    "StoreError",
    "StoreOutcome",
    "StoreResult",
    "connect_nntp",
]
