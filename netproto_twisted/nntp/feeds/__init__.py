"""Outgoing NNTP feeds: peers, the durable feed queue, and the service that sends it.

- ``peers``: :class:`FeedPeer` (one peer: address, INN-style newsgroup
  patterns, path identity, mode, retry policy) and :func:`parse_feed` for
  ``--feed NAME=HOST:PORT,...``;
- ``queue``: :class:`FeedRouter` (the store's filing hook: queues each
  stored article for the peers that want it, in the article's own
  transaction) and :class:`FeedQueue` (the sender's reads and updates);
- ``sender``: :class:`OutgoingFeeds` (a service) with one :class:`PeerFeed`
  per peer, sending with the client's :class:`~netproto_twisted.nntp.client.Feeder`
  or IHAVE, with retries and backoff.
"""

from __future__ import annotations

from netproto_twisted.nntp.feeds.peers import FeedPeer, compile_groups, parse_feed
from netproto_twisted.nntp.feeds.queue import FeedQueue, FeedRouter, QueueEntry, article_path
from netproto_twisted.nntp.feeds.sender import FeedCounters, OutgoingFeeds, PeerFeed, connect_peer

__all__ = [
    "FeedCounters",
    "FeedPeer",
    "FeedQueue",
    "FeedRouter",
    "OutgoingFeeds",
    "PeerFeed",
    "QueueEntry",
    "article_path",
    "compile_groups",
    "connect_peer",
    "parse_feed",
]
