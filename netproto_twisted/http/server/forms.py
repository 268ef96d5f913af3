"""Form bodies without :mod:`cgi`: urlencoded and multipart, with limits, large parts on disk.

What ``cgi.FieldStorage`` did, for our own resources and for WSGI
applications: :func:`parse_form` reads a body from a file object (twisted.web's
``request.content`` or WSGI's ``wsgi.input``) in blocks and returns a
:class:`FormData`.  Multipart bodies are parsed by python-multipart; each file
part goes to a :class:`~tempfile.SpooledTemporaryFile` that moves to disk past
``spool_threshold`` bytes.  :class:`FormLimits` bounds the number of parts, the
size of one plain field, of one file, and of the whole body; exceeding one
raises :class:`FormError` carrying the HTTP status to answer (413 or 400).
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO
from urllib.parse import parse_qsl

from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header

__all__ = [
    "FormData",
    "FormError",
    "FormField",
    "FormLimits",
    "form_from_environ",
    "form_from_request",
    "parse_form",
]

_BLOCK = 64 * 1024
BAD_REQUEST = 400
CONTENT_TOO_LARGE = 413
UNSUPPORTED_MEDIA_TYPE = 415


class FormError(ValueError):
    """A form body that breaks a limit or cannot be read; ``status`` is the HTTP answer."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


@dataclass(frozen=True)
class FormLimits:
    """Bounds on a form body.

    :ivar max_parts: fields (urlencoded pairs or multipart parts) (1,000).
    :ivar max_field_size: bytes of one plain (non-file) field (1 MiB).
    :ivar max_file_size: bytes of one file part (100 MiB).
    :ivar max_total: bytes of the whole body (110 MiB).
    :ivar spool_threshold: bytes of a file part kept in memory before it goes to disk (1 MiB).
    """

    max_parts: int = 1000
    max_field_size: int = 1024 * 1024
    max_file_size: int = 100 * 1024 * 1024
    max_total: int = 110 * 1024 * 1024
    spool_threshold: int = 1024 * 1024


DEFAULT_FORM_LIMITS = FormLimits()


@dataclass
class FormField:
    """One field: ``value`` for a plain field; ``filename``, ``file`` and ``size`` for a file."""

    name: str
    value: str = ""
    filename: str | None = None
    content_type: str = "text/plain"
    file: IO[bytes] | None = None
    size: int = 0
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def is_file(self) -> bool:
        """Whether this part was a file upload."""
        return self.filename is not None

    def read(self) -> bytes:
        """The file's content (from the start), or the value encoded as UTF-8."""
        if self.file is None:
            return self.value.encode("utf-8")
        self.file.seek(0)
        return self.file.read()


@dataclass
class FormData:
    """The fields of a form, in body order, with FieldStorage-like accessors."""

    fields: list[FormField] = field(default_factory=list)

    def __iter__(self) -> Iterator[FormField]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def __contains__(self, name: object) -> bool:
        return any(f.name == name for f in self.fields)

    def getfirst(self, name: str, default: str | None = None) -> str | None:
        """The first plain value of ``name`` (``cgi.FieldStorage.getfirst``)."""
        for f in self.fields:
            if f.name == name:
                return f.value
        return default

    def getlist(self, name: str) -> list[str]:
        """Every plain value of ``name``, in order."""
        return [f.value for f in self.fields if f.name == name]

    def file(self, name: str) -> FormField | None:
        """The first file part named ``name``."""
        for f in self.fields:
            if f.name == name and f.is_file:
                return f
        return None

    def close(self) -> None:
        """Close every spooled file."""
        for f in self.fields:
            if f.file is not None:
                f.file.close()


def _read_bounded(stream: BinaryIO, length: int | None, limit: int) -> Iterator[bytes]:
    remaining = length if length is not None else None
    total = 0
    while remaining is None or remaining > 0:
        want = _BLOCK if remaining is None else min(_BLOCK, remaining)
        block = stream.read(want)
        if not block:
            return
        total += len(block)
        if total > limit:
            raise FormError(CONTENT_TOO_LARGE, f"form body over {limit} bytes")
        if remaining is not None:
            remaining -= len(block)
        yield block


def parse_form(
    stream: BinaryIO,
    content_type: str | bytes | None,
    content_length: int | None = None,
    limits: FormLimits = DEFAULT_FORM_LIMITS,
    *,
    query: str = "",
    encoding: str = "utf-8",
) -> FormData:
    """Parse a form body (and the URL's ``query``, whose fields come first)."""
    if content_length is not None and content_length > limits.max_total:
        raise FormError(CONTENT_TOO_LARGE, f"form body over {limits.max_total} bytes")
    form = FormData()
    if query:
        _add_pairs(form, query, limits, encoding)
    raw_type = content_type.encode("latin-1") if isinstance(content_type, str) else content_type
    kind, params = parse_options_header(raw_type or b"")
    if kind == b"application/x-www-form-urlencoded":
        body = b"".join(_read_bounded(stream, content_length, limits.max_total))
        _add_pairs(form, body.decode(encoding, "replace"), limits, encoding)
    elif kind == b"multipart/form-data":
        boundary = params.get(b"boundary")
        if not boundary:
            raise FormError(BAD_REQUEST, "multipart body without a boundary")
        try:
            _parse_multipart(form, stream, content_length, boundary, limits, encoding)
        except FormError:
            form.close()
            raise
    elif kind and content_length:
        raise FormError(UNSUPPORTED_MEDIA_TYPE, f"not a form: {kind.decode('latin-1')}")
    return form


def _add_pairs(form: FormData, text: str, limits: FormLimits, encoding: str) -> None:
    room = limits.max_parts - len(form.fields)
    try:
        pairs = parse_qsl(text, keep_blank_values=True, encoding=encoding, max_num_fields=room)
    except ValueError:
        raise FormError(CONTENT_TOO_LARGE, f"more than {limits.max_parts} form fields") from None
    for name, value in pairs:
        if len(value) > limits.max_field_size:
            raise FormError(
                CONTENT_TOO_LARGE, f"field {name!r} over {limits.max_field_size} bytes"
            )
        form.fields.append(FormField(name, value))


class _MultipartCollector:
    def __init__(self, form: FormData, limits: FormLimits, encoding: str) -> None:
        self.form = form
        self.limits = limits
        self.encoding = encoding
        self.header_name = b""
        self.header_value = b""
        self.headers: dict[str, str] = {}
        self.current: FormField | None = None
        self.buffer = bytearray()

    def callbacks(self) -> Mapping[str, Any]:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": self.header_field,
            "on_header_value": self.header_value_data,
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
        }

    def part_begin(self) -> None:
        if len(self.form.fields) >= self.limits.max_parts:
            raise FormError(CONTENT_TOO_LARGE, f"more than {self.limits.max_parts} form parts")
        self.headers = {}
        self.buffer = bytearray()
        self.current = None

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def header_value_data(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def header_end(self) -> None:
        name = self.header_name.decode("latin-1").lower()
        self.headers[name] = self.header_value.decode(self.encoding, "replace")
        self.header_name = self.header_value = b""

    def headers_finished(self) -> None:
        disposition = self.headers.get("content-disposition", "")
        _, params = parse_options_header(disposition.encode(self.encoding, "replace"))
        name = params.get(b"name", b"").decode(self.encoding, "replace")
        filename = params.get(b"filename")
        part = FormField(name, headers=dict(self.headers))
        part.content_type = self.headers.get("content-type", "text/plain")
        if filename is not None:
            part.filename = filename.decode(self.encoding, "replace")
            part.file = tempfile.SpooledTemporaryFile(max_size=self.limits.spool_threshold)  # noqa: SIM115
        self.current = part
        self.form.fields.append(part)

    def part_data(self, data: bytes, start: int, end: int) -> None:
        part = self.current
        if part is None:
            return
        chunk = data[start:end]
        part.size += len(chunk)
        if part.file is not None:
            if part.size > self.limits.max_file_size:
                raise FormError(CONTENT_TOO_LARGE, f"file over {self.limits.max_file_size} bytes")
            part.file.write(chunk)
        else:
            if part.size > self.limits.max_field_size:
                raise FormError(
                    CONTENT_TOO_LARGE,
                    f"field {part.name!r} over {self.limits.max_field_size} bytes",
                )
            self.buffer += chunk

    def part_end(self) -> None:
        part = self.current
        if part is None:
            return
        if part.file is not None:
            part.file.seek(0)
        else:
            part.value = bytes(self.buffer).decode(self.encoding, "replace")
        self.current = None


def _parse_multipart(
    form: FormData,
    stream: BinaryIO,
    length: int | None,
    boundary: bytes,
    limits: FormLimits,
    encoding: str,
) -> None:
    collector = _MultipartCollector(form, limits, encoding)
    parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
    try:
        for block in _read_bounded(stream, length, limits.max_total):
            parser.write(block)
        parser.finalize()
    except FormError:
        raise
    except Exception as e:  # python-multipart's own errors: a malformed body
        raise FormError(BAD_REQUEST, f"malformed multipart body: {e}") from None


def form_from_request(request: Any, limits: FormLimits = DEFAULT_FORM_LIMITS) -> FormData:
    """Parse the form of a twisted.web request (its query and its spooled body)."""
    query = request.uri.partition(b"?")[2].decode("latin-1")
    content = request.content
    if content is None:
        return parse_form(io.BytesIO(), None, 0, limits, query=query)
    content.seek(0)
    return parse_form(content, request.getHeader(b"content-type"), None, limits, query=query)


def form_from_environ(
    environ: Mapping[str, Any], limits: FormLimits = DEFAULT_FORM_LIMITS
) -> FormData:
    """Parse the form of a WSGI request (``QUERY_STRING`` and ``wsgi.input``)."""
    raw_length = environ.get("CONTENT_LENGTH") or ""
    try:
        length: int | None = int(raw_length) if raw_length else 0
    except ValueError:
        raise FormError(BAD_REQUEST, f"bad Content-Length {raw_length!r}") from None
    return parse_form(
        environ["wsgi.input"],
        environ.get("CONTENT_TYPE"),
        length,
        limits,
        query=environ.get("QUERY_STRING", ""),
    )
