"""Articles coming in: POST, IHAVE (RFC 3977 6.3), MODE STREAM, CHECK, TAKETHIS (RFC 4644).

Every article is acknowledged (``240``, ``235``, ``239``) only once the store
has it on disk.  ``TAKETHIS`` replies are reserved in order and filled as
the group commit answers, so a feeder keeps many articles in flight on one
connection; past ``max_in_flight`` waiting replies, input is held.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from netproto_twisted.nntp._wire import Code, is_message_id, status
from netproto_twisted.nntp.errors import StoreError
from netproto_twisted.nntp.interfaces import History, Incoming, StoreOutcome, StoreResult
from netproto_twisted.nntp.server.articles import (
    ArticleRefused,
    Prepared,
    prepare_post,
    prepare_transit,
)
from netproto_twisted.nntp.server.moderation import moderate_post
from netproto_twisted.nntp.server.session import SessionBase

__all__ = ["FeedCommands"]

_log = Logger(namespace="netproto.nntp.server")


class FeedCommands(SessionBase):
    """POST and the transit commands, as a base of the session class."""

    @property
    def may_post(self) -> bool:
        """Whether POST is allowed now."""
        if not self.settings.allow_posting:
            return False
        return self.username is not None or not self.settings.posting_requires_auth

    @property
    def may_feed(self) -> bool:
        """Whether IHAVE, CHECK and TAKETHIS are allowed: a configured peer or feed user."""
        if self.feed_peer:
            return True
        users = self.settings.feed_users
        return self.username is not None and ("*" in users or self.username in users)

    def _incoming(self, prepared: Prepared) -> Incoming:
        return Incoming(
            prepared.message_id, prepared.data, prepared.groups, prepared.overview, self.now()
        )

    # -- MODE ------------------------------------------------------------------------------

    def mode(self, argument: str) -> None:
        """``MODE READER`` (200/201) or ``MODE STREAM`` (203)."""
        which = argument.upper()
        if which == "READER":
            if self.settings.allow_posting:
                self.reply(Code.READY_POSTING, "reader mode, posting allowed")
            else:
                self.reply(Code.READY_NO_POSTING, "reader mode, no posting")
        elif which == "STREAM":
            self.streaming = True
            self.reply(Code.STREAMING_OK, "streaming permitted")
        else:
            self.error(Code.SYNTAX, f"unknown mode {argument}")

    # -- POST ------------------------------------------------------------------------------

    def post(self, _: str) -> None:
        """``POST``: 340, the article, then 240 once stored or 441 with the reason."""
        if not self.settings.allow_posting:
            self.reply(Code.POSTING_NOT_PERMITTED, "posting not permitted")
            return
        if not self.may_post:
            self.reply(Code.AUTH_REQUIRED, "authentication required to post")
            return
        self.reply(Code.SEND_POST, "send article to be posted, end with <CR-LF>.<CR-LF>")
        self.receive_article(self._posted)

    def _posted(self, data: bytes | None, why: str | None) -> None:
        if data is None:
            self.reply(Code.POSTING_FAILED, why or "refused")
            return
        try:
            prepared = prepare_post(
                data,
                path_host=self.settings.path_host,
                domain=self.settings.domain,
                now=self.now(),
                poster=self.username or "",
            )
        except ArticleRefused as e:
            self.reply(Code.POSTING_FAILED, str(e))
            return
        self.run(self._store_post(prepared, data))

    async def _store_post(self, prepared: Prepared, data: bytes) -> None:
        wanted = []
        moderated = []
        for name in prepared.groups:
            info = await self.store.group(name)
            if info is None:
                continue
            if info.status in ("n", "x"):
                self.reply(Code.POSTING_FAILED, f"posting to {name} not allowed")
                return
            if info.status == "m":
                moderated.append(name)
            wanted.append(name)
        if not wanted:
            self.reply(Code.POSTING_FAILED, "no such newsgroup")
            return
        if moderated and not await moderate_post(self, moderated[0], data):
            return
        try:
            result = await self.store.store(self._incoming(prepared))
        except StoreError:
            _log.failure("cannot store a posted article")
            self.reply(Code.POSTING_FAILED, "cannot store the article now, try again later")
            return
        if result.outcome is StoreOutcome.STORED:
            self.reply(Code.POSTED, f"article received {prepared.message_id}")
        elif result.outcome is StoreOutcome.DUPLICATE:
            self.reply(Code.POSTING_FAILED, "duplicate Message-ID")
        else:
            self.reply(Code.POSTING_FAILED, "no such newsgroup")

    # -- IHAVE -----------------------------------------------------------------------------

    def _refuse_feed(self) -> bool:
        """Reply and return True when this peer may not feed."""
        if self.may_feed:
            return False
        if self.username is None and self.authenticator is not None:
            self.reply(Code.AUTH_REQUIRED, "transfer permission denied, authenticate first")
        else:
            self.reply(Code.NOT_PERMITTED, "transfer permission denied")
        return True

    def ihave(self, message_id: str) -> None:
        """``IHAVE <id>``: 335 if wanted, then 235 once stored (435, 436, 437 otherwise)."""
        if self._refuse_feed():
            return
        if not is_message_id(message_id):
            self.error(Code.SYNTAX, "bad Message-ID")
            return
        self.run(self._ihave(message_id))

    async def _ihave(self, message_id: str) -> None:
        known = await self.store.history(message_id)
        if known is History.IN_FLIGHT:
            self.reply(Code.TRANSFER_LATER, "being transferred, try again later")
            return
        if known is not History.UNKNOWN:
            self.reply(Code.NOT_WANTED, "article not wanted (duplicate)")
            return
        self.reply(Code.SEND_IHAVE, "send article, end with <CR-LF>.<CR-LF>")
        self.receive_article(lambda data, why: self._fed_ihave(message_id, data, why))

    def _fed_ihave(self, message_id: str, data: bytes | None, why: str | None) -> None:
        prepared = self._transit(message_id, data, why)
        if isinstance(prepared, str):
            self.reply(Code.TRANSFER_REJECTED, prepared)
            return
        self.wait(self.store.store(self._incoming(prepared)), self._ihave_stored)

    def _ihave_stored(self, result: StoreResult | Failure) -> None:
        if isinstance(result, Failure):
            _log.failure("cannot store a fed article", result)
            self.reply(Code.TRANSFER_LATER, "cannot store the article now, try again later")
        elif result.outcome is StoreOutcome.STORED:
            self.reply(Code.TRANSFERRED, "article transferred OK")
        elif result.outcome is StoreOutcome.DUPLICATE:
            self.reply(Code.TRANSFER_REJECTED, "duplicate")
        else:
            self.reply(Code.TRANSFER_REJECTED, "no wanted newsgroup")

    def _transit(self, message_id: str, data: bytes | None, why: str | None) -> Prepared | str:
        """The checked article, or the reason it is refused."""
        if data is None:
            return why or "refused"
        try:
            return prepare_transit(data, offered_id=message_id, path_host=self.settings.path_host)
        except ArticleRefused as e:
            return str(e)

    # -- CHECK, TAKETHIS -------------------------------------------------------------------

    def check(self, message_id: str) -> None:
        """``CHECK <id>``: 238 send it, 431 later, 438 not wanted."""
        if self._refuse_feed():
            return
        if not is_message_id(message_id):
            self.reply(Code.CHECK_REFUSED, f"{message_id} bad Message-ID")
            return
        self.wait(self.store.history(message_id), lambda r: self._checked(message_id, r))

    def _checked(self, message_id: str, known: History | Failure) -> None:
        if isinstance(known, Failure):
            _log.failure("history lookup failed", known)
            self.reply(Code.CHECK_LATER, f"{message_id} try again later")
        elif known is History.UNKNOWN:
            self.reply(Code.CHECK_SEND, message_id)
        elif known is History.IN_FLIGHT:
            self.reply(Code.CHECK_LATER, message_id)
        else:
            self.reply(Code.CHECK_REFUSED, message_id)

    def takethis(self, message_id: str) -> None:
        """``TAKETHIS <id>`` and the article: 239 once stored, 439 refused (always read whole)."""
        slot = self.reserve()
        allowed = self.may_feed
        self.receive_article(lambda data, why: self._took(slot, message_id, allowed, data, why))

    def _took(
        self,
        slot: list[bytes | None],
        message_id: str,
        allowed: bool,
        data: bytes | None,
        why: str | None,
    ) -> None:
        def refuse(reason: str) -> None:
            self.fill(slot, status(Code.TAKETHIS_REJECTED, f"{message_id} {reason}"))

        if not allowed:
            refuse("transfer permission denied")
            return
        if not is_message_id(message_id):
            refuse("bad Message-ID")
            return
        prepared = self._transit(message_id, data, why)
        if isinstance(prepared, str):
            refuse(prepared)
            return

        def stored(result: StoreResult | Failure) -> None:
            if self.lost:
                return
            if isinstance(result, Failure):
                _log.failure("cannot store a fed article", result)
                self.fill(slot, status(Code.UNAVAILABLE, "cannot store articles now"))
                self.close()
            elif result.outcome is StoreOutcome.STORED:
                self.fill(slot, status(Code.TAKETHIS_OK, message_id))
            elif result.outcome is StoreOutcome.DUPLICATE:
                refuse("duplicate")
            else:
                refuse("no wanted newsgroup")

        d: Deferred[StoreResult] = self.store.store(self._incoming(prepared))
        d.addBoth(stored)
        if self.replies_pending >= self.settings.max_in_flight:
            self.wait(self.drained(), lambda _: None)
