"""Sans-I/O XML-RPC: marshal values to XML and parse XML back, safely.

Serialising appends strings to one list and joins them once.  Parsing runs
:mod:`pyexpat` directly with small handlers, configured to refuse what
XML-RPC never needs: a document type declaration (and with it every entity
declaration, so no billion laughs), external entities (no XXE), parameter
entities; nesting of arrays and structs is limited.  Every failure of a
document is a :class:`~netproto_twisted.xmlrpc.errors.ResponseError`, never
another exception.

The values are the stdlib's: ``int`` (``<int>``, or ``<i8>`` beyond 32 bits
when enabled), ``bool``, ``str``, ``float``, ``None`` (``<nil/>`` when
``allow_none``), :class:`xmlrpc.client.DateTime` or :class:`datetime.datetime`,
:class:`xmlrpc.client.Binary` or ``bytes``, ``dict`` (struct, string keys),
``list``/``tuple`` (array).  Parsing gives ``DateTime``/``Binary`` unless
``use_builtin_types`` (``datetime``/``bytes``) or ``use_datetime``.
"""

from __future__ import annotations

import base64
import binascii
import xmlrpc.client
import zlib
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any
from xml.parsers import expat

from netproto_twisted.xmlrpc.errors import (
    INVALID_XMLRPC,
    PARSE_ERROR,
    BodyTooLarge,
    Fault,
    ResponseError,
    UnsafeXML,
)

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "MAXINT",
    "MAXINT64",
    "MININT",
    "MININT64",
    "Marshaller",
    "Unmarshaller",
    "dump_fault",
    "dump_request",
    "dump_response",
    "dumps",
    "escape",
    "gunzip",
    "loads",
    "parse_request",
    "parse_response",
]

#: Largest value of ``<int>``/``<i4>``.
MAXINT = 2**31 - 1
#: Smallest value of ``<int>``/``<i4>``.
MININT = -(2**31)
#: Largest value of ``<i8>``.
MAXINT64 = 2**63 - 1
#: Smallest value of ``<i8>``.
MININT64 = -(2**63)
#: Arrays and structs nested deeper than this are refused when parsing (and marshalling).
DEFAULT_MAX_DEPTH = 64

_XML_DECL = "<?xml version='1.0'?>\n"
_Append = Callable[[str], None]


def escape(text: str) -> str:
    """Escape ``&``, ``<``, ``>`` (and ``\\r``, which XML would turn into ``\\n``)."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    return text


class Marshaller:
    """Turn Python values into XML-RPC ``<value>`` elements.

    ``allow_none`` marshals ``None`` as ``<nil/>``; ``use_i8`` marshals an
    int beyond 32 bits as ``<i8>`` (else it is an :exc:`OverflowError`, as
    in the stdlib).  Recursive or over-deep containers are a
    :exc:`TypeError`.
    """

    def __init__(
        self,
        *,
        allow_none: bool = False,
        use_i8: bool = False,
        max_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        self.allow_none = allow_none
        self.use_i8 = use_i8
        self.max_depth = max_depth

    def dump(self, value: object, write: _Append) -> None:
        """Write ``value`` as one ``<value>`` element through ``write``."""
        self._dump(value, write, 0)

    def _dump(self, value: object, write: _Append, depth: int) -> None:
        kind = type(value)
        if kind is str:
            write("<value><string>")
            write(escape(value))  # type: ignore[arg-type]
            write("</string></value>")
        elif kind is int:
            self._int(value, write)  # type: ignore[arg-type]
        elif kind is dict:
            self._struct(value, write, depth)  # type: ignore[arg-type]
        elif kind is list or kind is tuple:
            self._array(value, write, depth)  # type: ignore[arg-type]
        elif kind is bool:
            write(
                "<value><boolean>1</boolean></value>"
                if value
                else "<value><boolean>0</boolean></value>"
            )
        elif kind is float:
            write("<value><double>")
            write(repr(value))
            write("</double></value>")
        elif value is None:
            if not self.allow_none:
                raise TypeError("cannot marshal None unless allow_none is enabled")
            write("<value><nil/></value>")
        elif kind is bytes or kind is bytearray or kind is memoryview:
            self._base64(bytes(value), write)  # type: ignore[call-overload]
        elif kind is datetime:
            write("<value><dateTime.iso8601>")
            write(value.strftime("%Y%m%dT%H:%M:%S"))  # type: ignore[attr-defined]
            write("</dateTime.iso8601></value>")
        else:
            self._other(value, write, depth)

    def _other(self, value: object, write: _Append, depth: int) -> None:
        if isinstance(value, xmlrpc.client.DateTime):
            write("<value><dateTime.iso8601>")
            write(escape(value.value))
            write("</dateTime.iso8601></value>")
        elif isinstance(value, xmlrpc.client.Binary):
            self._base64(value.data, write)
        elif isinstance(value, bool):
            self._dump(bool(value), write, depth)
        elif isinstance(value, int):
            self._int(int(value), write)
        elif isinstance(value, float):
            self._dump(float(value), write, depth)
        elif isinstance(value, Decimal):
            write("<value><double>")
            write(repr(float(value)))
            write("</double></value>")
        elif isinstance(value, str):
            self._dump(str(value), write, depth)
        elif isinstance(value, (bytes, bytearray)):
            self._base64(bytes(value), write)
        elif isinstance(value, datetime):
            self._dump(datetime(*value.timetuple()[:6]), write, depth)
        elif isinstance(value, dict):
            self._struct(value, write, depth)
        elif isinstance(value, (list, tuple)):
            self._array(value, write, depth)
        elif isinstance(value, xmlrpc.client.Fault):
            self._struct(
                {"faultCode": value.faultCode, "faultString": value.faultString}, write, depth
            )
        else:
            raise TypeError(f"cannot marshal {type(value).__name__} objects")

    def _int(self, value: int, write: _Append) -> None:
        if MININT <= value <= MAXINT:
            write("<value><int>")
            write(str(value))
            write("</int></value>")
        elif self.use_i8 and MININT64 <= value <= MAXINT64:
            write("<value><i8>")
            write(str(value))
            write("</i8></value>")
        else:
            raise OverflowError("int exceeds XML-RPC limits")

    @staticmethod
    def _base64(data: bytes, write: _Append) -> None:
        write("<value><base64>\n")
        write(base64.encodebytes(data).decode("ascii"))
        write("</base64></value>")

    def _array(self, value: Iterable[object], write: _Append, depth: int) -> None:
        if depth >= self.max_depth:
            raise TypeError("cannot marshal recursive or too deeply nested sequences")
        write("<value><array><data>")
        depth += 1
        dump = self._dump
        for item in value:
            # The common scalars inline, one append each: most of a large result.
            kind = type(item)
            if kind is str:
                text: str = item  # type: ignore[assignment]
                if "&" in text or "<" in text or ">" in text or "\r" in text:
                    text = escape(text)
                write(f"<value><string>{text}</string></value>")
            elif kind is int and MININT <= item <= MAXINT:  # type: ignore[operator]
                write(f"<value><int>{item}</int></value>")
            else:
                dump(item, write, depth)
        write("</data></array></value>")

    def _struct(self, value: dict[Any, Any], write: _Append, depth: int) -> None:
        if depth >= self.max_depth:
            raise TypeError("cannot marshal recursive or too deeply nested dictionaries")
        write("<value><struct>")
        depth += 1
        dump = self._dump
        names = _NAMES
        for key, item in value.items():
            name = names.get(key) if type(key) is str else None
            if name is None:
                name = _member_name(key)
            kind = type(item)
            if kind is str:
                text: str = item
                if "&" in text or "<" in text or ">" in text or "\r" in text:
                    text = escape(text)
                write(f"{name}<value><string>{text}</string></value></member>")
            elif kind is int and MININT <= item <= MAXINT:
                write(f"{name}<value><int>{item}</int></value></member>")
            elif kind is float:
                write(f"{name}<value><double>{item!r}</double></value></member>")
            elif kind is bool:
                write(f"{name}<value><boolean>{1 if item else 0}</boolean></value></member>")
            else:
                write(name)
                dump(item, write, depth)
                write("</member>")
        write("</struct></value>")


#: ``<member><name>...</name>`` of the struct keys seen most, escaped once.
_NAMES: dict[str, str] = {}
_MAX_NAMES = 4096


def _member_name(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError("dictionary key must be string")
    name = f"<member><name>{escape(str(key))}</name>"
    if type(key) is str and len(_NAMES) < _MAX_NAMES and len(key) <= 64:
        _NAMES[key] = name
    return name


_DEFAULT_MARSHALLER = Marshaller()


def _marshaller(allow_none: bool, use_i8: bool) -> Marshaller:
    if not allow_none and not use_i8:
        return _DEFAULT_MARSHALLER
    return Marshaller(allow_none=allow_none, use_i8=use_i8)


def dump_request(
    method: str, params: Iterable[object], *, allow_none: bool = False, use_i8: bool = False
) -> bytes:
    """Return a ``<methodCall>`` document (UTF-8) calling ``method`` with ``params``."""
    out: list[str] = [
        _XML_DECL,
        "<methodCall>\n<methodName>",
        escape(method),
        "</methodName>\n<params>\n",
    ]
    write = out.append
    dump = _marshaller(allow_none, use_i8).dump
    for param in params:
        write("<param>")
        dump(param, write)
        write("</param>\n")
    write("</params>\n</methodCall>\n")
    return "".join(out).encode("utf-8")


def dump_response(value: object, *, allow_none: bool = False, use_i8: bool = False) -> bytes:
    """Return a ``<methodResponse>`` document (UTF-8) with one result ``value``."""
    out: list[str] = [_XML_DECL, "<methodResponse>\n<params>\n<param>"]
    _marshaller(allow_none, use_i8).dump(value, out.append)
    out.append("</param>\n</params>\n</methodResponse>\n")
    return "".join(out).encode("utf-8")


def dump_fault(code: int, text: str) -> bytes:
    """Return a ``<methodResponse>`` document (UTF-8) carrying a fault."""
    out: list[str] = [_XML_DECL, "<methodResponse>\n<fault>\n"]
    _DEFAULT_MARSHALLER.dump({"faultCode": code, "faultString": text}, out.append)
    out.append("\n</fault>\n</methodResponse>\n")
    return "".join(out).encode("utf-8")


def dumps(
    params: tuple[Any, ...] | Fault | xmlrpc.client.Fault,
    methodname: str | None = None,
    methodresponse: bool = False,
    encoding: str | None = None,
    allow_none: bool = False,
    *,
    use_i8: bool = False,
) -> str:
    """Marshal like :func:`xmlrpc.client.dumps` (a str; a request, a response or a fault)."""
    if encoding not in (None, "utf-8", "UTF-8"):
        raise ValueError("only UTF-8 documents are produced")
    if isinstance(params, xmlrpc.client.Fault):
        return dump_fault(params.faultCode, params.faultString).decode("utf-8")
    if not isinstance(params, tuple):
        raise TypeError("params must be a tuple or a Fault")
    if methodname is not None:
        return dump_request(methodname, params, allow_none=allow_none, use_i8=use_i8).decode(
            "utf-8"
        )
    if methodresponse:
        if len(params) != 1:
            raise ValueError("a response carries exactly one value")
        return dump_response(params[0], allow_none=allow_none, use_i8=use_i8).decode("utf-8")
    out: list[str] = ["<params>\n"]
    dump = _marshaller(allow_none, use_i8).dump
    for param in params:
        out.append("<param>")
        dump(param, out.append)
        out.append("</param>\n")
    out.append("</params>\n")
    return "".join(out)


# -- parsing ------------------------------------------------------------------

_VALUE_TAGS = frozenset(
    {
        "int", "i4", "i8", "i1", "i2", "ex:i1", "ex:i2", "ex:i4", "ex:i8", "biginteger",
        "ex:biginteger", "boolean", "string", "double", "float", "ex:float",
        "bigdecimal", "ex:bigdecimal", "dateTime.iso8601", "ex:dateTime", "base64",
        "nil", "ex:nil",
    }
)  # fmt: skip
_STRUCTURE_TAGS = frozenset(
    {
        "methodCall", "methodResponse", "methodName", "params", "param", "fault", "value",
        "array", "data", "struct", "member", "name",
    }
)  # fmt: skip
_KNOWN_TAGS = _VALUE_TAGS | _STRUCTURE_TAGS
_INT_TAGS = frozenset(
    {
        "int",
        "i4",
        "i8",
        "i1",
        "i2",
        "ex:i1",
        "ex:i2",
        "ex:i4",
        "ex:i8",
        "biginteger",
        "ex:biginteger",
    }
)
_FLOAT_TAGS = frozenset({"double", "float", "ex:float"})
_TRUE_FALSE = {"1": True, "0": False}


def gunzip(body: bytes, limit: int) -> bytes:
    """Decompress a gzip (or zlib) body; :class:`BodyTooLarge` once it grows beyond ``limit``.

    Never inflates more than ``limit + 1`` bytes, so a gzip bomb costs
    nothing; a truncated or corrupt body is a :exc:`ValueError`.
    """
    decompressor = zlib.decompressobj(wbits=47)  # a gzip or zlib header
    try:
        data = decompressor.decompress(body, limit + 1)
    except zlib.error as e:
        raise ValueError(f"bad compressed body: {e}") from None
    if len(data) > limit or decompressor.unconsumed_tail:
        raise BodyTooLarge(limit)
    if not decompressor.eof:
        raise ValueError("truncated compressed body")
    return data


def _refuse_dtd(*_args: object) -> None:
    raise UnsafeXML("document type declarations are refused")


def _refuse_entity(*_args: object) -> None:
    raise UnsafeXML("entity declarations are refused")


def _refuse_external(*_args: object) -> int:
    raise UnsafeXML("external entities are refused")


def _parse_datetime(text: str) -> datetime:
    text = text.strip()
    if "-" in text[:10]:
        text = text[:10].replace("-", "") + text[10:]
    if len(text) != 17 or text[8] != "T" or text[11] != ":" or text[14] != ":":
        raise ValueError(f"bad dateTime.iso8601 value {text!r}")
    return datetime(
        int(text[0:4]), int(text[4:6]), int(text[6:8]),
        int(text[9:11]), int(text[12:14]), int(text[15:17]),
    )  # fmt: skip


class Unmarshaller:
    """Parse one XML-RPC document (request or response) with a hardened expat parser.

    Call :meth:`feed` with the whole body (or pieces), then :meth:`close`;
    :attr:`method` is the method name of a request, :attr:`params` the
    values, :attr:`fault` the ``(code, string)`` of a fault response.
    """

    def __init__(
        self,
        *,
        use_builtin_types: bool = False,
        use_datetime: bool = False,
        max_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        self.method: str | None = None
        self.root: str | None = None
        self.is_fault = False
        self._builtin = use_builtin_types
        self._datetime = use_datetime or use_builtin_types
        self._max_depth = max_depth
        self._max_elements = 4 * max_depth + 16
        self._stack: list[Any] = []
        self._marks: list[int] = []
        self._data: list[str] = []
        self._open = 0
        self._value = False
        self._typed = False
        parser = expat.ParserCreate()
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartDoctypeDeclHandler = _refuse_dtd
        parser.EntityDeclHandler = _refuse_entity
        parser.UnparsedEntityDeclHandler = _refuse_entity
        parser.ExternalEntityRefHandler = _refuse_external
        parser.buffer_text = True
        parser.buffer_size = 65536
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._data.append
        self._parser = parser

    def _start(self, tag: str, attrs: object) -> None:
        if self.root is None:
            if tag != "methodCall" and tag != "methodResponse" and tag != "params":
                raise ResponseError(f"not an XML-RPC document: <{tag}>")
            self.root = tag
        elif tag not in _KNOWN_TAGS:
            raise ResponseError(f"unknown element <{tag}>")
        self._open += 1
        if self._open > self._max_elements:
            raise ResponseError("document nested too deeply")
        del self._data[:]
        if tag in _VALUE_TAGS:
            if not self._value:
                raise ResponseError(f"<{tag}> outside a <value>")
            self._value = False
            self._typed = True
            return
        self._value = tag == "value"
        self._typed = False
        if tag == "array" or tag == "struct":
            if len(self._marks) >= self._max_depth:
                raise ResponseError("arrays or structs nested too deeply")
            self._marks.append(len(self._stack))
        elif tag == "fault":
            self.is_fault = True

    def _end(self, tag: str) -> None:
        self._open -= 1
        if tag == "value":
            if self._value:
                self._stack.append("".join(self._data))
                self._value = False
            return
        if tag in _STRUCTURE_TAGS:
            if tag == "name":
                self._stack.append("".join(self._data))
            elif tag == "array":
                mark = self._marks.pop()
                self._stack[mark:] = [self._stack[mark:]]
            elif tag == "struct":
                mark = self._marks.pop()
                items = self._stack[mark:]
                if len(items) & 1:
                    raise ResponseError("struct member without a name or a value")
                keys = items[::2]
                for key in keys:
                    if type(key) is not str:
                        raise ResponseError("struct member without a name")
                self._stack[mark:] = [dict(zip(keys, items[1::2], strict=False))]
            elif tag == "methodName":
                self.method = "".join(self._data)
            return
        if not self._typed:
            raise ResponseError(f"<{tag}> holds elements")
        self._typed = False
        text = "".join(self._data)
        if tag == "string":
            value: Any = text
        elif tag in _INT_TAGS:
            value = int(text)
        elif tag == "boolean":
            try:
                value = _TRUE_FALSE[text.strip()]
            except KeyError:
                raise ResponseError(f"bad boolean value {text!r}") from None
        elif tag in _FLOAT_TAGS:
            value = float(text)
        elif tag == "nil" or tag == "ex:nil":
            value = None
        elif tag == "base64":
            data = base64.b64decode("".join(text.split()).encode("ascii"), validate=True)
            value = data if self._builtin else xmlrpc.client.Binary(data)
        elif tag == "dateTime.iso8601" or tag == "ex:dateTime":
            if self._datetime:
                value = _parse_datetime(text)
            else:
                _parse_datetime(text)  # validated; DateTime keeps the text
                value = xmlrpc.client.DateTime(text.strip())
        else:  # bigdecimal
            value = Decimal(text)
        self._stack.append(value)

    def feed(self, data: bytes | str) -> None:
        """Parse a piece of the document."""
        try:
            self._parser.Parse(data, False)
        except ResponseError:
            raise
        except expat.ExpatError as e:
            raise ResponseError(f"not well-formed XML: {e}") from None
        except (ValueError, TypeError, ArithmeticError, binascii.Error, UnicodeError) as e:
            raise ResponseError(f"bad value: {e}") from None

    def close(self) -> tuple[Any, ...]:
        """Finish the document and return its values (a fault is *not* raised here)."""
        try:
            self._parser.Parse(b"", True)
        except ResponseError:
            raise
        except expat.ExpatError as e:
            raise ResponseError(f"not well-formed XML: {e}") from None
        except (ValueError, TypeError, ArithmeticError, binascii.Error, UnicodeError) as e:
            raise ResponseError(f"bad value: {e}") from None
        finally:
            self._parser.StartElementHandler = None
            self._parser.EndElementHandler = None
            self._parser.CharacterDataHandler = None
        if self._marks:
            raise ResponseError("unclosed array or struct")
        return tuple(self._stack)

    def fault(self) -> Fault:
        """The :class:`Fault` a fault response carries (call after :meth:`close`)."""
        if len(self._stack) != 1 or type(self._stack[0]) is not dict:
            raise ResponseError("malformed fault")
        body = self._stack[0]
        code, text = body.get("faultCode"), body.get("faultString")
        if type(code) is not int or not isinstance(text, str):
            raise ResponseError("malformed fault")
        return Fault(code, text)


def _parse(data: bytes | str, **options: Any) -> tuple[Unmarshaller, tuple[Any, ...]]:
    unmarshaller = Unmarshaller(**options)
    try:
        unmarshaller.feed(data)
        values = unmarshaller.close()
    except RecursionError:
        raise ResponseError("document nested too deeply") from None
    return unmarshaller, values


def parse_request(
    data: bytes | str,
    *,
    use_builtin_types: bool = False,
    use_datetime: bool = False,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> tuple[str, tuple[Any, ...]]:
    """Parse a ``<methodCall>``: return ``(method name, params)``; ResponseError if malformed."""
    unmarshaller, params = _parse(
        data, use_builtin_types=use_builtin_types, use_datetime=use_datetime, max_depth=max_depth
    )
    if unmarshaller.root != "methodCall" or unmarshaller.is_fault:
        raise ResponseError("not a <methodCall>")
    if not unmarshaller.method:
        raise ResponseError("<methodCall> without a <methodName>")
    return unmarshaller.method, params


def parse_response(
    data: bytes | str,
    *,
    use_builtin_types: bool = False,
    use_datetime: bool = False,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Any:
    """Parse a ``<methodResponse>``: return its value or raise its :class:`Fault`."""
    unmarshaller, params = _parse(
        data, use_builtin_types=use_builtin_types, use_datetime=use_datetime, max_depth=max_depth
    )
    if unmarshaller.root != "methodResponse":
        raise ResponseError("not a <methodResponse>")
    if unmarshaller.is_fault:
        raise unmarshaller.fault()
    if len(params) != 1:
        raise ResponseError(f"a response must carry one value, not {len(params)}")
    return params[0]


def loads(
    data: bytes | str, use_datetime: bool = False, use_builtin_types: bool = False
) -> tuple[tuple[Any, ...], str | None]:
    """Parse like :func:`xmlrpc.client.loads`: ``(params, method name or None)``; raise a fault."""
    unmarshaller, params = _parse(
        data, use_builtin_types=use_builtin_types, use_datetime=use_datetime
    )
    if unmarshaller.is_fault:
        raise unmarshaller.fault()
    return params, unmarshaller.method


#: Codes a server answers a :class:`ResponseError` with, by kind.
FAULT_CODES = {ResponseError: PARSE_ERROR, UnsafeXML: INVALID_XMLRPC}
