"""The NNTP client: nntplib's commands as Deferreds (``session``), its plumbing
(``protocol``) and a streaming feeder for CHECK/TAKETHIS (``feeder``)."""

from __future__ import annotations

from netproto_twisted.nntp.client.feeder import Feeder, FeedStats
from netproto_twisted.nntp.client.protocol import NNTPClientProtocol
from netproto_twisted.nntp.client.session import (
    DEFAULT_PORT,
    DEFAULT_TLS_PORT,
    ArticleInfo,
    GroupCount,
    GroupInfo,
    GroupListing,
    NNTPClient,
    connect_nntp,
)

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TLS_PORT",
    "ArticleInfo",
    "FeedStats",
    "Feeder",
    "GroupCount",
    "GroupInfo",
    "GroupListing",
    "NNTPClient",
    "NNTPClientProtocol",
    "connect_nntp",
]
