"""Static files from a directory: listings, index files, ranges, validators, compressed siblings.

:class:`StaticFiles` is a leaf :class:`~twisted.web.resource.Resource`.  Per
request it maps the path onto the directory (:mod:`.paths` refuses every
escape), then answers from a small cache of what it found there: the stat
result, the ETag, the headers and, for files up to :data:`SMALL_FILE` bytes,
the content itself.  An entry is checked against the file system again once
it is older than ``revalidate`` seconds (one by default, as nginx's
``open_file_cache_valid``), so a changed file is seen within a second while
a busy small file costs one dictionary lookup.  Bigger files are streamed
(:class:`~.body.FileBodyProducer`) and never read whole.
"""

from __future__ import annotations

import html
import mimetypes
import os
import stat
from collections import OrderedDict
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from twisted.internet.interfaces import IReactorTime
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from netproto_twisted.http.server._conditional import (
    ByteRange,
    RangeNotSatisfiable,
    accepted_encodings,
    evaluate_preconditions,
    http_date,
    parse_range,
)
from netproto_twisted.http.server.body import BodyPart, FileBodyProducer, sendfile_body
from netproto_twisted.http.server.paths import contained, safe_segments
from netproto_twisted.http.server.whole import can_write_whole, write_whole

__all__ = ["DEFAULT_INDEX", "SMALL_FILE", "StaticFiles", "content_type_for", "listing_html"]

#: Files at most this big are kept in memory (bytes).
SMALL_FILE = 64 * 1024
#: Most bytes of file content the cache holds in total.
CACHE_BYTES = 32 * 1024 * 1024
#: Most entries the cache holds.
CACHE_ENTRIES = 4096
#: Index files served for a directory URL, in order of preference.
DEFAULT_INDEX = ("index.html", "index.htm")
#: Precompressed siblings, best first: (coding, file suffix).
PRECOMPRESSED = ((b"br", ".br"), (b"gzip", ".gz"))

_FILE, _DIR, _MISSING = 0, 1, 2
_TEXT_TYPES = ("text/", "application/javascript", "application/json", "image/svg+xml")
_types = mimetypes.MimeTypes()
_types.add_type("text/javascript", ".js")  # RFC 9239
_types.add_type("text/javascript", ".mjs")
_types.add_type("application/wasm", ".wasm")
_types.add_type("text/markdown", ".md")
_types.add_type("image/webp", ".webp")


def content_type_for(name: str) -> bytes:
    """The Content-Type for a file name (``application/octet-stream`` when unknown)."""
    kind, _ = _types.guess_type(name, strict=False)
    if kind is None:
        return b"application/octet-stream"
    if kind.startswith(_TEXT_TYPES):
        kind += "; charset=utf-8"
    return kind.encode("ascii")


@dataclass
class _Variant:
    """One file as it will be sent: identity or a precompressed sibling."""

    path: str
    size: int
    mtime: int
    etag: bytes
    last_modified: bytes
    body: bytes | None = None
    #: Header lines of a whole-file answer (content type, validators, length), made once.
    head: bytes | None = None

    def head_lines(self, content_type: bytes, extra: bytes) -> bytes:
        """The header lines of a 200 answer with the whole file (cached but for ``extra``)."""
        if self.head is None:
            self.head = (
                b"Content-Type: %s\r\nETag: %s\r\nLast-Modified: %s\r\n"
                b"Accept-Ranges: bytes\r\nContent-Length: %d\r\n"
                % (content_type, self.etag, self.last_modified, self.size)
            )
        return extra + self.head if extra else self.head


@dataclass
class _Entry:
    kind: int
    checked: float
    path: str = ""
    content_type: bytes = b""
    identity: _Variant | None = None
    encoded: list[tuple[bytes, _Variant]] = field(default_factory=list)
    index: _Entry | None = None


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


def listing_html(url_path: str, directory: str) -> bytes:
    """An HTML listing of ``directory``: names escaped, sorted ignoring case, ``/`` after dirs."""
    rows = []
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: (e.name.lower(), e.name))
    except OSError:
        entries = []
    for entry in entries:
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        name = entry.name + ("/" if is_dir else "")
        href = quote(entry.name, errors="surrogatepass") + ("/" if is_dir else "")
        shown = _escape(name.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
        rows.append(f'<li><a href="{_escape(href)}">{shown}</a></li>')
    title = _escape(f"Index of {url_path}")
    page = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{title}</title></head>\n<body><h1>{title}</h1>\n<ul>\n"
        + ("\n".join(rows) + "\n" if rows else "")
        + "</ul>\n</body></html>\n"
    )
    return page.encode("utf-8")


class StaticFiles(Resource):
    """Serve the files under ``root`` (GET and HEAD).

    :param root: the directory served.
    :param clock: what tells the time for cache revalidation (the reactor).
    :param listings: render an HTML listing for a directory without an index file.
    :param index: names of index files.
    :param follow_symlinks_out: serve symbolic links whose target lies outside ``root``.
    :param revalidate: seconds a cached stat result is trusted.
    :param precompressed: serve ``NAME.br``/``NAME.gz`` when the client accepts them.
    """

    isLeaf = True
    allowedMethods = (b"GET", b"HEAD")

    def __init__(
        self,
        root: str | os.PathLike[str],
        clock: IReactorTime,
        *,
        listings: bool = True,
        index: tuple[str, ...] = DEFAULT_INDEX,
        follow_symlinks_out: bool = False,
        revalidate: float = 1.0,
        precompressed: bool = True,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.root = os.path.realpath(os.fspath(root))
        if not os.path.isdir(self.root):
            raise NotADirectoryError(self.root)
        self.clock = clock
        self.listings = listings
        self.index = index
        self.follow_symlinks_out = follow_symlinks_out
        self.revalidate = revalidate
        self.precompressed = precompressed
        self._cache: OrderedDict[bytes, _Entry] = OrderedDict()
        self._cached_bytes = 0

    # -- looking things up -------------------------------------------------------------

    def _lookup(self, key: bytes, postpath: list[bytes]) -> _Entry | None:
        now = self.clock.seconds()
        entry = self._cache.get(key)
        if entry is not None and now - entry.checked < self.revalidate:
            return entry
        segments = safe_segments(postpath)
        if segments is None:
            return None
        fresh = self._resolve(segments, now)
        if entry is not None:
            self._forget(key, entry)
        self._remember(key, fresh)
        return fresh

    def _forget(self, key: bytes, entry: _Entry) -> None:
        self._cache.pop(key, None)
        self._cached_bytes -= _entry_bytes(entry)

    def _remember(self, key: bytes, entry: _Entry) -> None:
        self._cache[key] = entry
        self._cached_bytes += _entry_bytes(entry)
        while len(self._cache) > CACHE_ENTRIES or self._cached_bytes > CACHE_BYTES:
            old_key, old = self._cache.popitem(last=False)
            self._cached_bytes -= _entry_bytes(old)
            if old_key == key:
                break

    def _resolve(self, segments: list[str], now: float) -> _Entry:
        path = os.path.join(self.root, *[s for s in segments if s])
        if not self.follow_symlinks_out and not contained(self.root, path):
            return _Entry(_MISSING, now)
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return _Entry(_MISSING, now)
        if stat.S_ISDIR(st.st_mode):
            return _Entry(_DIR, now, path=path, index=self._index_entry(path, now))
        if not stat.S_ISREG(st.st_mode):
            return _Entry(_MISSING, now)
        if segments and segments[-1] == "":
            return _Entry(_MISSING, now)  # /file.txt/ names no directory
        return self._file_entry(path, st, now)

    def _index_entry(self, directory: str, now: float) -> _Entry | None:
        for name in self.index:
            candidate = os.path.join(directory, name)
            if not self.follow_symlinks_out and not contained(self.root, candidate):
                continue
            try:
                st = os.stat(candidate)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                return self._file_entry(candidate, st, now)
        return None

    def _file_entry(self, path: str, st: os.stat_result, now: float) -> _Entry:
        entry = _Entry(_FILE, now, path=path, content_type=content_type_for(path))
        entry.identity = _variant(path, st, b"")
        if self.precompressed:
            for coding, suffix in PRECOMPRESSED:
                sibling = path + suffix
                try:
                    sst = os.stat(sibling)
                except OSError:
                    continue
                if stat.S_ISREG(sst.st_mode) and (
                    self.follow_symlinks_out or contained(self.root, sibling)
                ):
                    entry.encoded.append((coding, _variant(sibling, sst, b"-" + coding)))
        return entry

    def has(self, request: Request) -> bool:
        """Whether the request's path names a file or directory here."""
        entry = self._lookup(request.path, request.postpath or [])
        return entry is not None and entry.kind != _MISSING

    # -- answering ---------------------------------------------------------------------

    def render(self, request: Request) -> bytes | int:
        """Answer GET/HEAD from the directory; anything else gets 405."""
        method = request.method
        if method not in self.allowedMethods:
            request.setResponseCode(http.NOT_ALLOWED)
            request.setHeader(b"allow", b"GET, HEAD")
            return _plain(request, b"method not allowed\n")
        key = request.path
        entry = self._lookup(key, request.postpath or [])
        if entry is None or entry.kind == _MISSING:
            return _not_found(request)
        if entry.kind == _DIR:
            return self._directory(request, entry)
        return self._file(request, entry)

    def _directory(self, request: Request, entry: _Entry) -> bytes | int:
        path = request.path
        if not path.endswith(b"/"):
            target = path + b"/"
            query = request.uri.partition(b"?")[2]
            if query:
                target += b"?" + query
            request.setResponseCode(http.MOVED_PERMANENTLY)
            request.setHeader(b"location", target)
            return _plain(request, b"moved\n")
        if entry.index is not None:
            return self._file(request, entry.index)
        if not self.listings:
            return _not_found(request)
        url_path = path.decode("utf-8", "replace")
        body = listing_html(unquote(url_path), entry.path)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache")
        return _body(request, body)

    def _file(self, request: Request, entry: _Entry) -> bytes | int:
        variant = entry.identity
        assert variant is not None
        headers = request.responseHeaders
        get_header = request.getHeader
        coding = None
        if entry.encoded:
            accepted = accepted_encodings(get_header(b"accept-encoding"))
            for name, candidate in entry.encoded:
                if name in accepted:
                    variant, coding = candidate, name
                    break
        if (
            variant.body is not None
            and not request.requestHeaders.hasHeader(b"range")
            and not request.requestHeaders.hasHeader(b"if-none-match")
            and not request.requestHeaders.hasHeader(b"if-modified-since")
            and not request.requestHeaders.hasHeader(b"if-match")
            and not request.requestHeaders.hasHeader(b"if-unmodified-since")
            and can_write_whole(request)
        ):
            # The common case, a cached file asked for whole: one block, straight out.
            extra = b""
            if entry.encoded:
                extra = b"Vary: Accept-Encoding\r\n"
                if coding is not None:
                    extra += b"Content-Encoding: %s\r\n" % coding
            lines = variant.head_lines(entry.content_type, extra)
            write_whole(request, http.OK, None, lines, variant.body, has_length=True)
            return NOT_DONE_YET
        if entry.encoded:
            headers.setRawHeaders(b"vary", [b"Accept-Encoding"])
            if coding is not None:
                headers.setRawHeaders(b"content-encoding", [coding])
        headers.setRawHeaders(b"content-type", [entry.content_type])
        headers.setRawHeaders(b"etag", [variant.etag])
        headers.setRawHeaders(b"last-modified", [variant.last_modified])
        headers.setRawHeaders(b"accept-ranges", [b"bytes"])
        range_value = get_header(b"range")
        if_none_match = get_header(b"if-none-match")
        if_modified_since = get_header(b"if-modified-since")
        if_match = get_header(b"if-match")
        if_unmodified_since = get_header(b"if-unmodified-since")
        ranges: list[ByteRange] | None = None
        if range_value or if_none_match or if_modified_since or if_match or if_unmodified_since:
            outcome = evaluate_preconditions(
                etag=variant.etag,
                mtime=variant.mtime,
                if_match=if_match,
                if_none_match=if_none_match,
                if_modified_since=if_modified_since,
                if_unmodified_since=if_unmodified_since,
                if_range=get_header(b"if-range") if range_value else None,
            )
            if outcome.status:
                request.setResponseCode(outcome.status)
                if outcome.status == http.NOT_MODIFIED:
                    headers.removeHeader(b"content-type")
                    request.setHeader(b"content-length", b"0")
                    return b""
                return _plain(request, b"precondition failed\n")
            if range_value and outcome.use_range:
                try:
                    ranges = parse_range(range_value, variant.size)
                except RangeNotSatisfiable:
                    request.setResponseCode(http.REQUESTED_RANGE_NOT_SATISFIABLE)
                    request.setHeader(b"content-range", b"bytes */%d" % variant.size)
                    return _plain(request, b"range not satisfiable\n")
        return self._send(request, entry, variant, ranges)

    def _send(
        self, request: Request, entry: _Entry, variant: _Variant, ranges: list[ByteRange] | None
    ) -> bytes | int:
        size = variant.size
        parts: list[BodyPart]
        if ranges is None:
            if variant.body is not None:
                request.setHeader(b"content-length", b"%d" % size)
                return b"" if request.method == b"HEAD" else variant.body
            parts = [(0, size)]
            length = size
        elif len(ranges) == 1:
            only = ranges[0]
            request.setResponseCode(http.PARTIAL_CONTENT)
            request.setHeader(b"content-range", only.content_range(size))
            parts = [(only.start, only.length)]
            length = only.length
        else:
            boundary = os.urandom(12).hex().encode("ascii")
            request.setResponseCode(http.PARTIAL_CONTENT)
            request.setHeader(b"content-type", b"multipart/byteranges; boundary=" + boundary)
            parts = []
            for index, one in enumerate(ranges):
                head = (
                    (b"\r\n" if index else b"")
                    + b"--%s\r\nContent-Type: %s\r\n"
                    % (
                        boundary,
                        entry.content_type,
                    )
                    + b"Content-Range: %s\r\n\r\n" % one.content_range(size)
                )
                parts += [head, (one.start, one.length)]
            parts.append(b"\r\n--%s--\r\n" % boundary)
            length = sum(p[1] if isinstance(p, tuple) else len(p) for p in parts)
        request.setHeader(b"content-length", b"%d" % length)
        if request.method == b"HEAD":
            return b""
        if variant.body is not None:
            return b"".join(
                p if isinstance(p, bytes) else variant.body[p[0] : p[0] + p[1]] for p in parts
            )
        try:
            fd = os.open(variant.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            request.responseHeaders.removeHeader(b"content-length")
            request.setResponseCode(http.NOT_FOUND)
            return _plain(request, b"not found\n")
        if not sendfile_body(request, self.clock, fd, parts):
            FileBodyProducer(request, fd, parts).start()
        return NOT_DONE_YET


def _variant(path: str, st: os.stat_result, tag_suffix: bytes) -> _Variant:
    mtime = int(st.st_mtime)
    etag = b'"%x-%x%s"' % (st.st_mtime_ns, st.st_size, tag_suffix)
    variant = _Variant(path, st.st_size, mtime, etag, http_date(mtime))
    if st.st_size <= SMALL_FILE:
        try:
            with open(path, "rb") as f:
                data = f.read(SMALL_FILE + 1)
        except OSError:
            return variant
        if len(data) == st.st_size:
            variant.body = data
    return variant


def _entry_bytes(entry: _Entry) -> int:
    total = _entry_bytes(entry.index) if entry.index is not None else 0
    if entry.identity is not None and entry.identity.body is not None:
        total += len(entry.identity.body)
    for _, variant in entry.encoded:
        if variant.body is not None:
            total += len(variant.body)
    return total


def _body(request: Request, body: bytes) -> bytes:
    request.setHeader(b"content-length", b"%d" % len(body))
    return b"" if request.method == b"HEAD" else body


def _plain(request: Request, text: bytes) -> bytes:
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return _body(request, text)


def _not_found(request: Request) -> bytes:
    request.setResponseCode(http.NOT_FOUND)
    return _plain(request, b"not found\n")
