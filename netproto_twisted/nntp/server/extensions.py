"""NNTP server extensions: COMPRESS DEFLATE (RFC 8054) and the RFC 6048 LIST keywords.

``COMPRESS DEFLATE`` answers ``206`` and from the next byte on both
directions are one raw deflate stream each (core's
:mod:`~netproto_twisted.core.deflate`, sync-flushed after every reply or
block).  As RFC 8054 requires: ``502`` when compression is already on (a
second COMPRESS, or TLS-level compression); the capability is not listed
then; and, against CRIME-style attacks, no authentication after
COMPRESS: ``AUTHINFO`` and ``STARTTLS`` answer ``502`` and are no longer
listed.  A client that wants TLS or a login does them first.  Undecodable
input or a decompression bomb ends the session with ``400`` (compressed).

``LIST MOTD``, ``LIST SUBSCRIPTIONS``, ``LIST DISTRIBUTIONS``,
``LIST MODERATORS`` and ``LIST DISTRIB.PATS`` answer from the listener's
:class:`~netproto_twisted.nntp.lists.NewsLists` (``503`` for a list not
kept here); ``LIST HEADERS [MSGID|RANGE]`` takes RFC 3977's argument.

``ARTICLE``, ``HEAD`` and ``BODY`` of an article larger than
``NNTPSettings.stream_threshold`` are streamed from the store a block at a
time (:mod:`~netproto_twisted.nntp.article_blobs`), dot-stuffed, with
backpressure, when the store offers it.
"""

from __future__ import annotations

from netproto_twisted.core.deflate import tls_compression_off
from netproto_twisted.core.streaming import StreamProducer
from netproto_twisted.nntp._wire import Code, WildmatError, block, status, wildmat
from netproto_twisted.nntp.article_blobs import IArticleStreams
from netproto_twisted.nntp.server.reader import ReaderCommands

__all__ = ["LIST_KEYWORDS", "ExtensionCommands"]

#: The LIST keywords the server answers (the ``LIST`` capability line).
LIST_KEYWORDS = (
    "ACTIVE ACTIVE.TIMES COUNTS DISTRIB.PATS DISTRIBUTIONS HEADERS MODERATORS MOTD "
    "NEWSGROUPS OVERVIEW.FMT SUBSCRIPTIONS"
)
#: LIST HEADERS: any header may be asked for, and the two metadata items.
_HEADERS = [":", ":bytes", ":lines"]


class ExtensionCommands(ReaderCommands):
    """COMPRESS and the RFC 6048 LIST keywords, as a base of the session class."""

    #: Whether COMPRESS is active on this session.
    compressed = False

    # -- COMPRESS (RFC 8054) ---------------------------------------------------------------

    @property
    def compression_offered(self) -> bool:
        """Whether ``COMPRESS DEFLATE`` may be used now (and so is listed)."""
        if not self.settings.compression or self.compressed:
            return False
        # No layering over TLS-level compression (our TLS contexts never allow it).
        return not (self.secure and self.tls is not None and not tls_compression_off(self.tls))

    def compress(self, argument: str) -> None:
        """``COMPRESS DEFLATE``: 206, then raw deflate both ways for the rest of the session."""
        if self.replies_pending:
            # Earlier replies (TAKETHIS) must go out uncompressed first.
            self.wait(self.drained(), lambda _: self.compress(argument))
            return
        algorithm = argument.strip()
        if not algorithm or " " in algorithm:
            self.error(Code.SYNTAX, "COMPRESS needs one algorithm name")
        elif self.compressed:
            self.reply(Code.NOT_PERMITTED, "compression already active")
        elif algorithm.upper() != "DEFLATE":
            self.reply(Code.NOT_SUPPORTED, "only the DEFLATE algorithm is supported")
        elif not self.compression_offered:
            self.reply(Code.NOT_PERMITTED, "compression not available on this connection")
        else:
            self.reply(Code.COMPRESS_ACTIVE, "compression active")
            self.compressed = True
            self.start_compression(self.settings.max_compressed_expansion)

    def compression_failed(self, error: Exception) -> None:
        """Bad compressed input (junk, a bomb): ``400`` and close."""
        if not self.closing:
            self.reply(Code.UNAVAILABLE, "compressed stream error, closing")
            self.close()

    # -- ARTICLE and BODY of large articles, streamed -------------------------------------------

    def article(self, argument: str) -> None:
        """``ARTICLE [n|<id>]`` (a large article streamed from the store)."""
        self.run(self._fetch_large("ARTICLE", argument))

    def head(self, argument: str) -> None:
        """``HEAD [n|<id>]`` (the header of a large article read a block at a time)."""
        self.run(self._fetch_large("HEAD", argument))

    def body(self, argument: str) -> None:
        """``BODY [n|<id>]`` (a large body streamed from the store)."""
        self.run(self._fetch_large("BODY", argument))

    async def _fetch_large(self, verb: str, argument: str) -> None:
        streams = IArticleStreams(self.store, None)
        if streams is None:
            await self._fetch(verb, argument)
            return
        located = await self._find_with(argument, streams.locate_by_id, streams.locate)
        if located is None:
            return
        if located.size <= self.settings.stream_threshold:
            await self._fetch(verb, argument)  # small: read whole, one write
            return
        code = {"ARTICLE": Code.ARTICLE, "HEAD": Code.HEAD, "BODY": Code.BODY}[verb]
        if self.replies_pending:
            await self.drained()
        self.write_now(status(code, f"{located.number} {located.message_id}"))
        reader = streams.open_article(located, verb)
        producer = StreamProducer(reader, runner=self.runner, dot_stuff=True, close=True)
        await producer.start(self.consumer)

    # -- LIST (RFC 6048) -------------------------------------------------------------------

    def list(self, argument: str) -> None:
        """``LIST`` with the RFC 6048 keywords; the others as the reader commands answer them."""
        keyword, _, rest = argument.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        lists = self.settings.lists
        if keyword == "HEADERS":
            if rest.upper() not in ("", "MSGID", "RANGE"):
                self.error(Code.SYNTAX, "LIST HEADERS [MSGID|RANGE]")
            else:
                self.send(block(status(Code.LIST, "headers follow"), _HEADERS))
            return
        if keyword == "MOTD":
            if rest:
                self.error(Code.SYNTAX, "LIST MOTD takes no argument")
            elif lists.motd is None:
                self.reply(Code.NOT_SUPPORTED, "no message of the day here")
            else:
                self.send(block(status(Code.LIST, "message of the day follows"), lists.motd))
            return
        if keyword == "SUBSCRIPTIONS":
            self._listing(rest, lists.subscriptions, "subscriptions")
            return
        if keyword == "DISTRIBUTIONS":
            if rest:
                self.error(Code.SYNTAX, "LIST DISTRIBUTIONS takes no argument")
            elif lists.distributions is None:
                self.reply(Code.NOT_SUPPORTED, "no distributions kept here")
            else:
                self.send(block(status(Code.LIST, "distributions follow"),
                                lists.distribution_lines()))  # fmt: skip
            return
        if keyword == "MODERATORS":
            if rest:
                self.error(Code.SYNTAX, "LIST MODERATORS takes no argument")
            elif lists.moderators is None:
                self.reply(Code.NOT_SUPPORTED, "no moderators list here")
            else:
                self.send(block(status(Code.LIST, "moderators follow"), lists.moderator_lines()))
            return
        if keyword == "DISTRIB.PATS":
            if rest:
                self.error(Code.SYNTAX, "LIST DISTRIB.PATS takes no argument")
            else:
                self.send(block(status(Code.LIST, "distribution patterns follow"),
                                lists.distrib_pats))  # fmt: skip
            return
        super().list(argument)

    def _listing(self, pattern: str, items: tuple[str, ...] | None, what: str) -> None:
        """A list of group names, filtered by an optional wildmat (LIST SUBSCRIPTIONS)."""
        if items is None:
            self.reply(Code.NOT_SUPPORTED, f"no {what} list here")
            return
        try:
            match = wildmat(pattern) if pattern else None
        except WildmatError as e:
            self.error(Code.SYNTAX, str(e))
            return
        lines = [g for g in items if match is None or match(g)]
        self.send(block(status(Code.LIST, f"{what} follow"), lines))
