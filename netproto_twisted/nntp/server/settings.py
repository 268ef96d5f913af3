"""The NNTP server's settings (one :class:`NNTPSettings` per listener)."""

from __future__ import annotations

from dataclasses import dataclass, field

from netproto_twisted import __version__
from netproto_twisted.core.deflate import DEFAULT_MAX_EXPANSION
from netproto_twisted.nntp.lists import NewsLists

__all__ = ["DEFAULT_MAX_ARTICLE_SIZE", "NNTPSettings"]

#: INN's default ``maxartsize``: about a megabyte.
DEFAULT_MAX_ARTICLE_SIZE = 1_000_000


@dataclass(frozen=True)
class NNTPSettings:
    """Everything that shapes one listening news server's behaviour.

    :ivar hostname: the server's name in the greeting.
    :ivar path_host: the name added to Path headers (loop detection looks for it).
    :ivar domain: the right side of the Message-IDs the server makes.
    :ivar posting_requires_auth: POST needs AUTHINFO first (the default).
    :ivar allow_posting: POST at all (``False``: a read-only server, greeting 201).
    :ivar feed_peers: networks whose hosts may feed articles (IHAVE, CHECK,
        TAKETHIS) without logging in.
    :ivar feed_users: logins that may feed from anywhere (``*``: any logged-in user).
    :ivar approvers: logins that may post ``Approved`` articles to moderated
        groups (``*``: any logged-in user; none by default).
    :ivar allow_insecure_auth: AUTHINFO without TLS to loopback peers.
    :ivar max_article_size: the largest article accepted, in bytes (larger: refused).
    :ivar max_article_line: the longest article line accepted, CRLF excluded.
    :ivar max_line_length: the longest command line, CRLF excluded.
    :ivar max_in_flight: TAKETHIS articles a connection may have waiting to be stored.
    :ivar max_errors: bad commands in a session before it is closed.
    :ivar idle_timeout: seconds without a command before the session is closed.
    :ivar tls_handshake_timeout: seconds a TLS handshake may take.
    :ivar command_rate: sustained commands per second per connection (``None``: no limit).
    :ivar command_burst: commands at once before the rate applies.
    :ivar implementation: the ``IMPLEMENTATION`` capability's text.
    :ivar compression: offer ``COMPRESS DEFLATE`` (RFC 8054).
    :ivar max_compressed_expansion: the most bytes one received chunk may
        inflate to under COMPRESS (more: a decompression bomb, the session ends).
    :ivar lists: what the RFC 6048 LIST keywords answer (:class:`NewsLists`).
    :ivar stream_threshold: ARTICLE/BODY of an article larger than this many
        bytes are streamed from the store a block at a time (smaller: read whole).
    """

    hostname: str = "localhost"
    path_host: str = "localhost"
    domain: str = "localhost"
    posting_requires_auth: bool = True
    allow_posting: bool = True
    feed_peers: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    feed_users: tuple[str, ...] = ("*",)
    approvers: tuple[str, ...] = ()
    allow_insecure_auth: bool = False
    max_article_size: int = DEFAULT_MAX_ARTICLE_SIZE
    max_article_line: int = 998
    max_line_length: int = 2048
    max_in_flight: int = 256
    max_errors: int = 20
    idle_timeout: float | None = 600.0
    tls_handshake_timeout: float | None = 30.0
    command_rate: float | None = None
    command_burst: int = 1000
    implementation: str = f"netproto_twisted-{__version__}"
    compression: bool = True
    max_compressed_expansion: int = DEFAULT_MAX_EXPANSION
    lists: NewsLists = field(default_factory=NewsLists)
    stream_threshold: int = 256 * 1024
