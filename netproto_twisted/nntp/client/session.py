"""The NNTP client API: nntplib's commands as Deferreds, with overview and articles streamed.

::

    client = await connect_nntp(reactor, "news.example.org", 119, tls="opportunistic")
    group = await client.group("comp.lang.python")
    for number, fields in await client.over((group.first, group.last)):
        print(number, fields["subject"])
    await client.over((1, 10**6), on_lines=handle)     # streamed, bounded memory
    info = await client.article(group.last)              # ArticleInfo(number, id, lines)
    with open("article.eml", "wb") as f:
        await client.article("<id@host>", file=f)        # streamed to a file or a consumer
    await client.post(open("post.txt", "rb").read())
    await client.quit()

Error replies fail with :class:`~netproto_twisted.nntp.errors.NNTPTemporaryError`
(4xx) or :class:`~netproto_twisted.nntp.errors.NNTPPermanentError` (5xx),
as nntplib raises them.
"""

from __future__ import annotations

import builtins
import datetime
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IStreamClientEndpoint,
)

from netproto_twisted.core.client import ReplyQueueFactory, client_target, open_client
from netproto_twisted.core.sasl import choose_mechanism, client_mechanism, encode_response
from netproto_twisted.core.tls import client_options
from netproto_twisted.nntp._wire import (
    Code,
    format_datetime,
    parse_overview_block,
    stuffed,
)
from netproto_twisted.nntp.client.protocol import NNTPClientProtocol, Reply
from netproto_twisted.nntp.errors import NNTPError, NNTPProtocolError

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TLS_PORT",
    "ArticleInfo",
    "GroupCount",
    "GroupInfo",
    "GroupListing",
    "NNTPClient",
    "connect_nntp",
]

#: The NNTP port (RFC 3977) and the implicit-TLS one (RFC 4642).
DEFAULT_PORT = 119
DEFAULT_TLS_PORT = 563

TLSMode = Literal["starttls", "implicit", "opportunistic", "none"]
_TLS_MODES = ("starttls", "implicit", "opportunistic", "none")


class _Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


@dataclass(frozen=True)
class GroupInfo:
    """``GROUP``'s answer: the estimated count, first and last numbers, the name."""

    count: int
    first: int
    last: int
    name: str


@dataclass(frozen=True)
class GroupListing:
    """One ``LIST ACTIVE`` line, as nntplib's ``GroupInfo``: group, last, first, flag."""

    group: str
    last: int
    first: int
    flag: str


@dataclass(frozen=True)
class GroupCount:
    """One ``LIST COUNTS`` line (RFC 6048): group, last, first, article count, status."""

    group: str
    last: int
    first: int
    count: int
    flag: str


@dataclass(frozen=True)
class ArticleInfo:
    """An article (or its head or body) as nntplib gives it: number, Message-ID, lines.

    ``lines`` are without their CRLF, unstuffed; empty when streamed to a file.
    """

    number: int
    message_id: str
    lines: list[bytes]


def _lines(block: bytes) -> list[bytes]:
    if not block:
        return []
    return block[:-2].split(b"\r\n") if block.endswith(b"\r\n") else block.split(b"\r\n")


def _text_lines(block: bytes) -> list[str]:
    return [line.decode("utf-8", "surrogateescape") for line in _lines(block)]


def _which(which: int | str | None) -> str:
    return "" if which is None else f" {which}"


def _range(value: tuple[int, int | None] | str | int) -> str:
    if isinstance(value, tuple):
        first, last = value
        return f"{first}-{'' if last is None else last}"
    return str(value)


def _when(since: datetime.date | datetime.datetime | float) -> str:
    if isinstance(since, (int, float)):
        stamp = float(since)
    elif isinstance(since, datetime.datetime):
        aware = since if since.tzinfo else since.replace(tzinfo=datetime.timezone.utc)
        stamp = aware.timestamp()
    else:
        stamp = datetime.datetime(since.year, since.month, since.day,
                                  tzinfo=datetime.timezone.utc).timestamp()  # fmt: skip
    date, time = format_datetime(stamp)
    return f"{date} {time} GMT"


def _pairs(lines: builtins.list[str]) -> dict[str, str]:
    """``name<TAB or spaces>text`` lines as a mapping."""
    out = {}
    for line in lines:
        name, _, text = line.replace("\t", " ", 1).partition(" ")
        if name:
            out[name] = text.strip()
    return out


def _overview(block: bytes) -> builtins.list[tuple[int, dict[str, str]]]:
    try:
        return parse_overview_block(block)
    except ValueError as e:
        raise NNTPProtocolError(str(e)) from None


class NNTPClient:
    """A connected NNTP session (from :func:`connect_nntp`): nntplib's commands as Deferreds.

    :ivar welcome: the greeting's text.
    :ivar posting_allowed: whether the greeting was 200 (posting may be allowed).
    """

    def __init__(
        self, protocol: NNTPClientProtocol, greeting: tuple[int, str], host: str = ""
    ) -> None:
        self.protocol = protocol
        self.welcome = greeting[1]
        self.posting_allowed = greeting[0] == Code.READY_POSTING
        self.host = host
        self._capabilities: dict[str, builtins.list[str]] | None = None

    @property
    def is_secure(self) -> bool:
        """Whether TLS is on."""
        return self.protocol.is_secure

    def _text(self, line: str) -> Deferred[str]:
        return self.protocol.command(line).addCallback(lambda r: r[1])

    def _block(self, line: str) -> Deferred[Reply]:
        return self.protocol.command(line)

    # -- session ----------------------------------------------------------------------------

    def capabilities(self) -> Deferred[dict[str, builtins.list[str]]]:
        """``CAPABILITIES``: ``{"VERSION": ["2"], "OVER": ["MSGID"], ...}``."""

        def parse(reply: Reply) -> dict[str, builtins.list[str]]:
            caps: dict[str, builtins.list[str]] = {}
            for line in _text_lines(reply[2]):
                words = line.split()
                if words:
                    caps[words[0].upper()] = words[1:]
            self._capabilities = caps
            return caps

        return self._block("CAPABILITIES").addCallback(parse)

    def mode_reader(self) -> Deferred[str]:
        """``MODE READER``."""
        return self._text("MODE READER")

    def mode_stream(self) -> Deferred[str]:
        """``MODE STREAM`` (RFC 4644)."""
        return self._text("MODE STREAM")

    def date(self) -> Deferred[datetime.datetime]:
        """``DATE``: the server's time (UTC)."""

        def parse(text: str) -> datetime.datetime:
            stamp = text.split()[0] if text.split() else ""
            try:
                when = datetime.datetime.strptime(stamp, "%Y%m%d%H%M%S")
            except ValueError:
                raise NNTPProtocolError(f"bad DATE reply {text!r}") from None
            return when.replace(tzinfo=datetime.timezone.utc)

        return self._text("DATE").addCallback(parse)

    def help(self) -> Deferred[builtins.list[str]]:
        """``HELP``: the lines of text."""
        return self._block("HELP").addCallback(lambda r: _text_lines(r[2]))

    def starttls(self, options: IOpenSSLClientConnectionCreator | None = None) -> Deferred[str]:
        """``STARTTLS`` (RFC 4642), then the handshake (verifying ``host`` by default)."""
        if options is None:
            options = client_options(self.host)
        chosen = options

        def go(text: str) -> str:
            self.protocol.start_tls(chosen, server=False)
            self._capabilities = None
            return text

        return self._text("STARTTLS").addCallback(go)

    def login(self, user: str, password: str) -> Deferred[str]:
        """``AUTHINFO USER`` then ``AUTHINFO PASS``; fires with the 281 text."""

        async def run() -> str:
            code, text, _ = await self.protocol.command(f"AUTHINFO USER {user}")
            if code == Code.AUTH_OK:
                return text
            return (await self.protocol.command(f"AUTHINFO PASS {password}"))[1]

        return ensureDeferred(run())

    def authenticate(
        self,
        username: str,
        password: str,
        mechanism: str | None = None,
        *,
        allow_insecure: bool = False,
    ) -> Deferred[str]:
        """``AUTHINFO SASL`` (RFC 4643): PLAIN, LOGIN, CRAM-MD5 or SCRAM-SHA-256."""

        async def run() -> str:
            name = mechanism
            if name is None:
                caps = await self.capabilities()
                name = choose_mechanism(
                    caps.get("SASL", []), self.is_secure, allow_plaintext_insecure=allow_insecure
                )
            mech = client_mechanism(name, username, password)
            initial = mech.initial_response()
            line = f"AUTHINFO SASL {mech.name}"
            if initial is not None:
                line += " " + encode_response(initial, initial=True).decode("ascii")
            return (await self.protocol.command(line, challenge=mech.respond))[1]

        return ensureDeferred(run())

    def quit(self) -> Deferred[str]:
        """``QUIT``; fires once the connection has closed."""

        async def run() -> str:
            text = await self._text("QUIT")
            self.protocol.lose()
            await self.protocol.when_closed()
            return text

        return ensureDeferred(run())

    def close(self) -> Deferred[None]:
        """Close without ``QUIT``."""
        self.protocol.lose()
        return self.protocol.when_closed()

    # -- groups -----------------------------------------------------------------------------

    def group(self, name: str) -> Deferred[GroupInfo]:
        """``GROUP name``."""

        def parse(text: str) -> GroupInfo:
            words = text.split()
            try:
                return GroupInfo(int(words[0]), int(words[1]), int(words[2]), words[3])
            except (IndexError, ValueError):
                raise NNTPProtocolError(f"bad GROUP reply {text!r}") from None

        return self._text(f"GROUP {name}").addCallback(parse)

    def listgroup(
        self, name: str | None = None, numbers: tuple[int, int | None] | None = None
    ) -> Deferred[builtins.list[int]]:
        """``LISTGROUP [group [range]]``: the article numbers."""
        line = "LISTGROUP"
        if name is not None:
            line += f" {name}"
            if numbers is not None:
                line += f" {_range(numbers)}"
        d = self.protocol.command(line, group_block=True)
        return d.addCallback(lambda r: [int(x) for x in _lines(r[2])])

    def list(
        self, pattern: str | None = None, keyword: str = "ACTIVE"
    ) -> Deferred[builtins.list[GroupListing]]:
        """``LIST ACTIVE [wildmat]``: every group's numbers and flag."""

        def parse(reply: Reply) -> builtins.list[GroupListing]:
            out = []
            for line in _text_lines(reply[2]):
                words = line.split()
                if len(words) >= 4:
                    out.append(GroupListing(words[0], int(words[1]), int(words[2]), words[3]))
            return out

        return self._block(f"LIST {keyword}" + _which(pattern)).addCallback(parse)

    def list_lines(
        self, keyword: str, argument: str | None = None
    ) -> Deferred[builtins.list[str]]:
        """Any ``LIST keyword [argument]``: its lines of text (OVERVIEW.FMT, HEADERS...)."""
        return self._block(f"LIST {keyword}" + _which(argument)).addCallback(
            lambda r: _text_lines(r[2])
        )

    def descriptions(self, pattern: str = "*") -> Deferred[dict[str, str]]:
        """``LIST NEWSGROUPS pattern``: ``{group: description}``."""

        def parse(lines: builtins.list[str]) -> dict[str, str]:
            out = {}
            for line in lines:
                name, _, text = line.replace("\t", " ", 1).partition(" ")
                out[name] = text.strip()
            return out

        return self.list_lines("NEWSGROUPS", pattern).addCallback(parse)

    def description(self, group: str) -> Deferred[str]:
        """One group's description (``""`` if none)."""
        return self.descriptions(group).addCallback(lambda d: d.get(group, ""))

    # -- RFC 6048 lists ------------------------------------------------------------------------

    def counts(self, pattern: str | None = None) -> Deferred[builtins.list[GroupCount]]:
        """``LIST COUNTS [wildmat]``: each group's numbers, article count and status."""

        def parse(lines: builtins.list[str]) -> builtins.list[GroupCount]:
            out = []
            for line in lines:
                words = line.split()
                if len(words) >= 5:
                    name, high, low, count, flag = words[:5]
                    out.append(GroupCount(name, int(high), int(low), int(count), flag))
            return out

        return self.list_lines("COUNTS", pattern).addCallback(parse)

    def motd(self) -> Deferred[builtins.list[str]]:
        """``LIST MOTD``: the message of the day, line by line."""
        return self.list_lines("MOTD")

    def subscriptions(self, pattern: str | None = None) -> Deferred[builtins.list[str]]:
        """``LIST SUBSCRIPTIONS [wildmat]``: the groups a new reader should subscribe to."""
        return self.list_lines("SUBSCRIPTIONS", pattern).addCallback(
            lambda lines: [line.strip() for line in lines if line.strip()]
        )

    def distributions(self) -> Deferred[dict[str, str]]:
        """``LIST DISTRIBUTIONS``: ``{distribution: description}``."""
        return self.list_lines("DISTRIBUTIONS").addCallback(_pairs)

    def moderators(self) -> Deferred[builtins.list[tuple[str, str]]]:
        """``LIST MODERATORS``: ``[(wildmat, address template)]`` in the server's order."""

        def parse(lines: builtins.list[str]) -> builtins.list[tuple[str, str]]:
            out = []
            for line in lines:
                pattern, sep, address = line.partition(":")
                if sep:
                    out.append((pattern, address))
            return out

        return self.list_lines("MODERATORS").addCallback(parse)

    def list_headers(self, which: str | None = None) -> Deferred[builtins.list[str]]:
        """``LIST HEADERS [MSGID|RANGE]``: the headers and metadata HDR can give."""
        return self.list_lines("HEADERS", which)

    # -- COMPRESS (RFC 8054) -------------------------------------------------------------------

    def compress(self) -> Deferred[str]:
        """``COMPRESS DEFLATE``: compress the rest of the session both ways.

        Call it with nothing else in flight and send nothing until it fires.
        Log in and start TLS first: the server refuses both after COMPRESS.
        """
        return self.protocol.compress().addCallback(lambda r: r[1])

    @property
    def compressed(self) -> bool:
        """Whether COMPRESS is active."""
        return self.protocol.encoder is not None

    def newgroups(
        self, since: datetime.date | datetime.datetime | float
    ) -> Deferred[builtins.list[GroupListing]]:
        """``NEWGROUPS``: the groups created since."""

        def parse(reply: Reply) -> builtins.list[GroupListing]:
            out = []
            for line in _text_lines(reply[2]):
                words = line.split()
                if len(words) >= 4:
                    out.append(GroupListing(words[0], int(words[1]), int(words[2]), words[3]))
            return out

        return self._block(f"NEWGROUPS {_when(since)}").addCallback(parse)

    def newnews(
        self, pattern: str, since: datetime.date | datetime.datetime | float
    ) -> Deferred[builtins.list[str]]:
        """``NEWNEWS wildmat date``: the Message-IDs arrived since."""
        return self._block(f"NEWNEWS {pattern} {_when(since)}").addCallback(
            lambda r: _text_lines(r[2])
        )

    # -- articles ----------------------------------------------------------------------------

    def _article(self, verb: str, which: int | str | None, file: Any) -> Deferred[ArticleInfo]:
        sink = None
        if file is not None:
            write = getattr(file, "write", None)
            if not callable(write):
                raise TypeError("file is an IConsumer or an object with write(bytes)")
            sink = cast(Callable[[bytes], object], write)

        def parse(reply: Reply) -> ArticleInfo:
            words = reply[1].split()
            try:
                number, mid = int(words[0]), words[1]
            except (IndexError, ValueError):
                raise NNTPProtocolError(f"bad {verb} reply {reply[1]!r}") from None
            return ArticleInfo(number, mid, _lines(reply[2]))

        return self.protocol.command(verb + _which(which), sink=sink).addCallback(parse)

    def article(
        self, which: int | str | None = None, *, file: Any = None
    ) -> Deferred[ArticleInfo]:
        """``ARTICLE [n|<id>]``; with ``file`` (a file or consumer) the article is streamed."""
        return self._article("ARTICLE", which, file)

    def head(self, which: int | str | None = None, *, file: Any = None) -> Deferred[ArticleInfo]:
        """``HEAD [n|<id>]``."""
        return self._article("HEAD", which, file)

    def body(self, which: int | str | None = None, *, file: Any = None) -> Deferred[ArticleInfo]:
        """``BODY [n|<id>]``."""
        return self._article("BODY", which, file)

    def stat(self, which: int | str | None = None) -> Deferred[tuple[int, str]]:
        """``STAT [n|<id>]``: ``(number, Message-ID)``."""
        return self._article("STAT", which, None).addCallback(lambda a: (a.number, a.message_id))

    def last(self) -> Deferred[tuple[int, str]]:
        """``LAST``: ``(number, Message-ID)``."""
        return self._article("LAST", None, None).addCallback(lambda a: (a.number, a.message_id))

    def next(self) -> Deferred[tuple[int, str]]:
        """``NEXT``: ``(number, Message-ID)``."""
        return self._article("NEXT", None, None).addCallback(lambda a: (a.number, a.message_id))

    # -- overview and headers ------------------------------------------------------------------

    def over(
        self,
        which: tuple[int, int | None] | str | int | None = None,
        *,
        on_lines: Callable[[builtins.list[tuple[int, dict[str, str]]]], object] | None = None,
        verb: str = "OVER",
    ) -> Deferred[Any]:
        """``OVER [range|<id>]``: ``[(number, {"subject": ..., ...}), ...]`` as nntplib's ``over``.

        With ``on_lines`` the overview is streamed: the callback gets lists of
        parsed lines as they arrive and the Deferred fires with the count.
        """
        line = verb if which is None else f"{verb} {_range(which)}"
        if on_lines is None:
            return self._block(line).addCallback(lambda r: _overview(r[2]))
        count = [0]

        def sink(chunk: bytes) -> None:
            items = _overview(chunk)
            count[0] += len(items)
            on_lines(items)

        return self.protocol.command(line, sink=sink).addCallback(lambda _: count[0])

    def xover(self, start: int, end: int, *, on_lines: Any = None) -> Deferred[Any]:
        """``XOVER start-end`` (the legacy name of OVER)."""
        return self.over((start, end), on_lines=on_lines, verb="XOVER")

    def hdr(
        self,
        header: str,
        which: tuple[int, int | None] | str | int | None = None,
        verb: str = "HDR",
    ) -> Deferred[builtins.list[tuple[int, str]]]:
        """``HDR header [range|<id>]``: ``[(number, value), ...]``."""
        line = f"{verb} {header}" + ("" if which is None else f" {_range(which)}")

        def parse(reply: Reply) -> builtins.list[tuple[int, str]]:
            out = []
            for text in _text_lines(reply[2]):
                number, _, value = text.partition(" ")
                out.append((int(number), value))
            return out

        return self._block(line).addCallback(parse)

    def xhdr(
        self, header: str, which: tuple[int, int | None] | str | int | None = None
    ) -> Deferred[builtins.list[tuple[int, str]]]:
        """``XHDR header [range|<id>]`` (the legacy name of HDR)."""
        return self.hdr(header, which, verb="XHDR")

    # -- posting and feeding ---------------------------------------------------------------------

    def post(self, article: bytes | Iterable[bytes]) -> Deferred[str]:
        """``POST``: send an article (bytes with LF or CRLF line ends); fires with the 240 text."""
        data = article if isinstance(article, bytes) else b"".join(article)
        return self.protocol.command("POST", article=stuffed(data)).addCallback(lambda r: r[1])

    def ihave(self, message_id: str, article: bytes) -> Deferred[str]:
        """``IHAVE <id>``: offer and send an article; fires with the 235 text."""
        return self.protocol.command(f"IHAVE {message_id}", article=stuffed(article)).addCallback(
            lambda r: r[1]
        )

    def check(self, message_id: str) -> Deferred[bool | None]:
        """``CHECK <id>``: True (send it), False (not wanted), None (try later)."""

        def parse(reply: Reply) -> bool | None:
            if reply[0] == Code.CHECK_SEND:
                return True
            raise NNTPProtocolError(f"unexpected CHECK reply {reply[0]}")

        def refused(failure: Any) -> bool | None:
            error = failure.value
            code = getattr(error, "code", 0)
            if code == Code.CHECK_REFUSED:
                return False
            if code == Code.CHECK_LATER:
                return None
            return cast(bool | None, failure)

        return self.protocol.command(f"CHECK {message_id}").addCallbacks(parse, refused)

    def takethis(self, message_id: str, article: bytes) -> Deferred[bool]:
        """``TAKETHIS <id>`` with the article, pipelined: True if 239, False if 439."""
        self.protocol.send_data(f"TAKETHIS {message_id}\r\n".encode() + stuffed(article))

        def refused(failure: Any) -> bool:
            if getattr(failure.value, "code", 0) == Code.TAKETHIS_REJECTED:
                return False
            return cast(bool, failure)

        return self.protocol.expect().addCallbacks(lambda _: True, refused)


def connect_nntp(
    reactor: Any,
    host: str,
    port: int | None = None,
    *,
    tls: TLSMode = "none",
    tls_options: IOpenSSLClientConnectionCreator | None = None,
    user: str | None = None,
    password: str | None = None,
    reader_mode: bool = False,
    compress: bool = False,
    timeout: float = 30.0,
    endpoint: IStreamClientEndpoint | None = None,
) -> Deferred[NNTPClient]:
    """Connect, read the greeting, secure per ``tls``, log in if a user is given.

    ``tls``: ``"none"`` (nntplib's default), ``"starttls"`` (required),
    ``"opportunistic"`` (if offered), ``"implicit"`` (port 563).  ``tls_options``
    default to verifying ``host``.  ``user``/``password``: AUTHINFO USER/PASS.
    ``reader_mode`` sends MODE READER.  ``compress``: then COMPRESS DEFLATE, if
    the server offers it (RFC 8054; see :meth:`NNTPClient.compress`).
    ``timeout`` bounds the connection and every reply.
    """
    if (user is None) != (password is None):
        raise ValueError("give both user and password, or neither")
    target = client_target(
        reactor,
        host,
        port,
        tls=tls,
        modes=_TLS_MODES,
        default_ports=(DEFAULT_PORT, DEFAULT_TLS_PORT),
        tls_options=tls_options,
        timeout=timeout,
        endpoint=endpoint,
    )
    options = target.tls_options

    async def set_up(protocol: NNTPClientProtocol) -> NNTPClient:
        client = NNTPClient(protocol, await protocol.greeting, host)
        if tls in ("starttls", "opportunistic") and not client.is_secure:
            caps = await client.capabilities()
            if "STARTTLS" in caps:
                await client.starttls(options)
            elif tls == "starttls":
                raise NNTPError("the server does not offer STARTTLS")
        if user is not None and password is not None:
            await client.login(user, password)
        if reader_mode:
            await client.mode_reader()
        if compress and (await client.capabilities()).get("COMPRESS") == ["DEFLATE"]:
            await client.compress()
        return client

    factory = ReplyQueueFactory(NNTPClientProtocol, reactor, timeout)
    return ensureDeferred(open_client(target.endpoint, factory, set_up, where=target.where))
