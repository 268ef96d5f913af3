"""The reader commands of the NNTP server (RFC 3977 6-8, RFC 6048, the legacy X commands).

GROUP, LISTGROUP, LAST, NEXT, ARTICLE/HEAD/BODY/STAT, NEWGROUPS, NEWNEWS,
LIST and its keywords, OVER/XOVER (streamed from the overview cursor in the
thread pool, with backpressure), HDR/XHDR and XPAT.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from twisted.internet.defer import Deferred

from netproto_twisted.core.streaming import StreamProducer
from netproto_twisted.nntp._wire import (
    ARTICLE_END,
    OVERVIEW_FMT,
    Code,
    WildmatError,
    block,
    header_value,
    is_message_id,
    overview_line,
    parse_datetime,
    parse_headers,
    parse_range,
    sanitize_field,
    split_article,
    status,
    stuffed,
    wildmat,
)
from netproto_twisted.nntp.interfaces import Article, GroupInfo
from netproto_twisted.nntp.server.session import SessionBase

__all__ = ["ReaderCommands"]

Matcher = Callable[[str], bool]
_T = TypeVar("_T")
_ARTICLE_CODES = {"ARTICLE": Code.ARTICLE, "HEAD": Code.HEAD, "BODY": Code.BODY, "STAT": Code.STAT}
#: Most HDR/XHDR/XPAT lines in one reply.
_HDR_LIMIT = 1_000_000


def _active(g: GroupInfo) -> str:
    return f"{g.name} {g.high} {g.low} {g.status}"


def _overview_of(article: Article) -> bytes:
    """The overview line of an article fetched by Message-ID (number 0)."""
    head, body = split_article(article.data)
    headers = parse_headers(head)

    def value(name: str) -> str:
        return sanitize_field(header_value(headers, name) or "")

    fields = [value("Subject"), value("From"), value("Date"), article.message_id,
              value("References"), str(len(article.data)), str(body.count(b"\r\n")),
              "Xref: " + value("Xref")]  # fmt: skip
    return overview_line(0, fields)


class ReaderCommands(SessionBase):
    """The reader commands, as a base of the session class."""

    # -- groups -----------------------------------------------------------------------------

    def group(self, name: str) -> None:
        """``GROUP name``."""
        self.run(self._group(name, listing=None))

    def listgroup(self, argument: str) -> None:
        """``LISTGROUP [group [range]]``."""
        name, _, rng = argument.partition(" ")
        self.run(self._group(name or None, listing=rng or "1-"))

    async def _group(self, name: str | None, listing: str | None) -> None:
        if name is None:
            name = self.group_name
            if name is None:
                self.reply(Code.NO_GROUP, "no newsgroup selected")
                return
        info = await self.store.group(name)
        if info is None:
            self.reply(Code.NO_SUCH_GROUP, f"no such newsgroup {name}")
            return
        if listing is not None:
            try:
                low, high = parse_range(listing)
            except ValueError:
                self.error(Code.SYNTAX, "bad range")
                return
        self.group_name = name
        self.article_number = info.low if info.count else None
        line = f"{info.count} {info.low} {info.high} {name}"
        if listing is None:
            self.reply(Code.GROUP, line)
            return
        numbers = await self.store.numbers(name, low, high)
        self.send(block(status(Code.GROUP, line + " list follows"), map(str, numbers)))

    def _navigate(self, forward: bool) -> None:
        self.run(self._neighbour(forward))

    def last(self, _: str) -> None:
        """``LAST``."""
        self._navigate(False)

    def next(self, _: str) -> None:
        """``NEXT``."""
        self._navigate(True)

    async def _neighbour(self, forward: bool) -> None:
        if self.group_name is None:
            self.reply(Code.NO_GROUP, "no newsgroup selected")
            return
        if self.article_number is None:
            self.reply(Code.NO_CURRENT, "no current article")
            return
        number = await self.store.neighbour(self.group_name, self.article_number, forward)
        article = None if number is None else await self.store.article(self.group_name, number)
        if article is None:
            if forward:
                self.reply(Code.NO_NEXT, "no next article")
            else:
                self.reply(Code.NO_PREV, "no previous article")
            return
        self.article_number = article.number
        self.reply(Code.STAT, f"{article.number} {article.message_id}")

    # -- articles ---------------------------------------------------------------------------

    def article(self, argument: str) -> None:
        """``ARTICLE [n|<id>]``."""
        self.run(self._fetch("ARTICLE", argument))

    def head(self, argument: str) -> None:
        """``HEAD [n|<id>]``."""
        self.run(self._fetch("HEAD", argument))

    def body(self, argument: str) -> None:
        """``BODY [n|<id>]``."""
        self.run(self._fetch("BODY", argument))

    def stat(self, argument: str) -> None:
        """``STAT [n|<id>]``."""
        self.run(self._fetch("STAT", argument))

    async def _find(self, argument: str) -> Article | None:
        """The article an argument names, or ``None`` after replying why not."""
        return await self._find_with(argument, self.store.article_by_id, self.store.article)

    async def _find_with(
        self,
        argument: str,
        by_id: Callable[[str], Deferred[_T | None]],
        by_number: Callable[[str, int], Deferred[_T | None]],
    ) -> _T | None:
        """What ``by_id``/``by_number`` give for the article an argument names (or ``None``)."""
        if argument.startswith("<"):
            if not is_message_id(argument):
                self.error(Code.SYNTAX, "bad Message-ID")
                return None
            found = await by_id(argument)
            if found is None:
                self.reply(Code.NO_SUCH_ID, "no such article")
            return found
        if self.group_name is None:
            self.reply(Code.NO_GROUP, "no newsgroup selected")
            return None
        if argument:
            try:
                number, high = parse_range(argument)
            except ValueError:
                number, high = -1, None
            if number < 0 or high != number:
                self.error(Code.SYNTAX, "bad article number")
                return None
            found = await by_number(self.group_name, number)
            if found is None:
                self.reply(Code.NO_SUCH_NUMBER, "no article with that number")
            else:
                self.article_number = number
            return found
        if self.article_number is None:
            self.reply(Code.NO_CURRENT, "no current article")
            return None
        found = await by_number(self.group_name, self.article_number)
        if found is None:
            self.reply(Code.NO_CURRENT, "current article is gone")
        return found

    async def _fetch(self, verb: str, argument: str) -> None:
        article = await self._find(argument)
        if article is None:
            return
        line = status(_ARTICLE_CODES[verb], f"{article.number} {article.message_id}")
        if verb == "STAT":
            self.send(line)
            return
        data = article.data
        if verb != "ARTICLE":
            cut = data.find(b"\r\n\r\n")
            if cut < 0:
                cut = len(data) - 2
            data = data[: cut + 2] if verb == "HEAD" else data[cut + 4 :]
        self.send(line + stuffed(data))

    # -- NEWGROUPS, NEWNEWS ---------------------------------------------------------------------

    def _since(self, words: list[str]) -> float | None:
        try:
            return parse_datetime(*words, now=self.now())
        except (TypeError, ValueError):
            self.error(Code.SYNTAX, "expected [yy]yymmdd hhmmss [GMT]")
            return None

    def newgroups(self, argument: str) -> None:
        """``NEWGROUPS date time [GMT]``."""
        since = self._since(argument.split())
        if since is not None:
            self.run(self._newgroups(since))

    async def _newgroups(self, since: float) -> None:
        groups = await self.store.new_groups(since)
        self.send(block(status(Code.NEWGROUPS, "new newsgroups follow"), map(_active, groups)))

    def newnews(self, argument: str) -> None:
        """``NEWNEWS wildmat date time [GMT]``."""
        pattern, _, rest = argument.partition(" ")
        since = self._since(rest.split())
        if since is None:
            return
        try:
            match = wildmat(pattern)
        except WildmatError as e:
            self.error(Code.SYNTAX, str(e))
            return
        self.run(self._newnews(match, since))

    async def _newnews(self, match: Matcher, since: float) -> None:
        found = await self.store.new_news(since)
        ids = [mid for mid, groups in found if any(match(g) for g in groups)]
        self.send(block(status(Code.NEWNEWS, "new articles follow"), ids))

    # -- LIST ------------------------------------------------------------------------------

    def list(self, argument: str) -> None:
        """``LIST [keyword [wildmat|argument]]``."""
        keyword, _, rest = argument.partition(" ")
        keyword = keyword.upper() or "ACTIVE"
        if keyword == "OVERVIEW.FMT":
            self.send(block(status(Code.LIST, "overview format follows"), OVERVIEW_FMT))
            return
        if keyword == "HEADERS":
            self.send(block(status(Code.LIST, "headers follow"), [":", ":bytes", ":lines"]))
            return
        if keyword == "DISTRIB.PATS":
            self.send(block(status(Code.LIST, "distribution patterns follow"), []))
            return
        if keyword not in ("ACTIVE", "ACTIVE.TIMES", "NEWSGROUPS", "COUNTS"):
            self.error(Code.SYNTAX, f"LIST {keyword} not supported")
            return
        try:
            match = wildmat(rest) if rest else None
        except WildmatError as e:
            self.error(Code.SYNTAX, str(e))
            return
        self.run(self._list(keyword, match))

    async def _list(self, keyword: str, match: Matcher | None) -> None:
        groups = [g for g in await self.store.groups() if match is None or match(g.name)]
        if keyword == "ACTIVE":
            lines = [_active(g) for g in groups]
        elif keyword == "COUNTS":
            lines = [f"{g.name} {g.high} {g.low} {g.count} {g.status}" for g in groups]
        elif keyword == "ACTIVE.TIMES":
            lines = [f"{g.name} {int(g.created)} {g.creator or 'netproto'}" for g in groups]
        else:
            lines = [f"{g.name}\t{g.description}" for g in groups]
        self.send(block(status(Code.LIST, f"{keyword.lower()} follows"), lines))

    # -- OVER, HDR -------------------------------------------------------------------------

    def over(self, argument: str) -> None:
        """``OVER [range|<id>]`` (``XOVER`` is the same)."""
        self.run(self._over(argument))

    async def _range(self, argument: str) -> tuple[str, int, int | None] | None:
        """The group and range an argument names (the current article without one)."""
        if self.group_name is None:
            self.reply(Code.NO_GROUP, "no newsgroup selected")
            return None
        if not argument:
            if self.article_number is None:
                self.reply(Code.NO_CURRENT, "no current article")
                return None
            return self.group_name, self.article_number, self.article_number
        try:
            low, high = parse_range(argument)
        except ValueError:
            self.error(Code.SYNTAX, "bad range")
            return None
        first = await self.store.neighbour(self.group_name, low - 1, True)
        if first is None or (high is not None and first > high):
            self.reply(Code.NO_SUCH_NUMBER, "no articles in that range")
            return None
        return self.group_name, low, high

    async def _over(self, argument: str) -> None:
        if argument.startswith("<"):
            article = await self._find(argument)
            if article is not None:
                self.send(
                    block(status(Code.OVERVIEW, "overview follows"), [_overview_of(article)])
                )
            return
        found = await self._range(argument)
        if found is None:
            return
        if self.replies_pending:
            await self.drained()
        self.write_now(status(Code.OVERVIEW, "overview follows"))
        cursor = self.store.open_overview(*found)
        producer = StreamProducer(cursor, runner=self.runner, close=True)  # type: ignore[arg-type]
        await producer.start(self.consumer)
        self.write_now(ARTICLE_END)

    def hdr(self, argument: str) -> None:
        """``HDR field [range|<id>]``."""
        self.run(self._hdr(argument, Code.HDR, None))

    def xhdr(self, argument: str) -> None:
        """``XHDR field [range|<id>]`` (code 221)."""
        self.run(self._hdr(argument, Code.HEAD, None))

    def xpat(self, argument: str) -> None:
        """``XPAT field range|<id> pattern...``: the articles whose field matches."""
        words = argument.split(" ")
        if len(words) < 3:
            self.error(Code.SYNTAX, "XPAT field range pattern")
            return
        try:
            patterns = [wildmat(w) for w in words[2:] if w]
        except WildmatError as e:
            self.error(Code.SYNTAX, str(e))
            return
        self.run(self._hdr(" ".join(words[:2]), Code.HEAD, patterns))

    async def _hdr(self, argument: str, code: int, patterns: Sequence[Matcher] | None) -> None:
        field, _, rng = argument.partition(" ")
        if field.startswith(":") and field.lower() not in (":bytes", ":lines"):
            self.error(Code.SYNTAX, f"unknown metadata {field}")
            return
        name = field.lstrip(":")
        if rng.startswith("<"):
            article = await self._find(rng)
            if article is None:
                return
            if name.lower() in ("bytes", "lines"):
                value = _overview_of(article).split(b"\t")[6 if name.lower() == "bytes" else 7]
                values = [(0, value.decode())]
            else:
                head = split_article(article.data)[0]
                values = [(0, sanitize_field(header_value(parse_headers(head), name) or ""))]
        else:
            found = await self._range(rng)
            if found is None:
                return
            values = await self.store.header_values(*found, name, _HDR_LIMIT)
        if patterns is not None:
            values = [(n, v) for n, v in values if any(p(v) for p in patterns)]
        lines = [f"{n} {v}" for n, v in values]
        self.send(block(status(code, "headers follow"), lines))

    # -- DATE ------------------------------------------------------------------------------

    def date(self, _: str) -> None:
        """``DATE``: the server's time in UTC."""
        self.reply(Code.DATE, time.strftime("%Y%m%d%H%M%S", time.gmtime(self.now())))
