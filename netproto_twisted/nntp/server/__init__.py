"""The NNTP server: a command table, a sans-I/O session object, a thin Protocol.

- :class:`NNTPConnection` (``connection``, on ``session``, ``reader`` and
  ``feed``): one session, sans-I/O;
- :class:`NNTPServerProtocol` and :class:`NNTPServerFactory` (``protocol``);
- ``commands``: :data:`NNTP_COMMANDS`; ``settings``: :class:`NNTPSettings`;
  ``articles``: the posting and transit checks.
"""

from __future__ import annotations

from netproto_twisted.nntp.server.articles import (
    ArticleRefused,
    Prepared,
    prepare_post,
    prepare_transit,
)
from netproto_twisted.nntp.server.commands import NNTP_COMMANDS, State
from netproto_twisted.nntp.server.connection import NNTPConnection
from netproto_twisted.nntp.server.protocol import NNTPServerFactory, NNTPServerProtocol
from netproto_twisted.nntp.server.settings import DEFAULT_MAX_ARTICLE_SIZE, NNTPSettings

__all__ = [
    "DEFAULT_MAX_ARTICLE_SIZE",
    "NNTP_COMMANDS",
    "ArticleRefused",
    "NNTPConnection",
    "NNTPServerFactory",
    "NNTPServerProtocol",
    "NNTPSettings",
    "Prepared",
    "State",
    "prepare_post",
    "prepare_transit",
]
