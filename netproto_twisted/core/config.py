"""The TOML configuration file: sections declared as dataclasses, validated with one-line errors.

A protocol declares its section as a frozen dataclass whose type hints are
the schema, and :func:`field` adds a help text and bounds::

    @dataclass(frozen=True)
    class SMTPSection:
        listen: tuple[str, ...] = field(default=("tcp:2525:interface=127.0.0.1",),
                                        help="endpoints to listen on")
        max_size: int = field(default=35_000_000, minimum=1, help="largest message, bytes")
        relay_networks: tuple[Network, ...] = field(default=(), help="may relay")
        mode: Literal["mx", "submission"] = "mx"

    sections = load_config("netproto.toml", {"smtp": SMTPSection})
    smtp = sections["smtp"]                     # an SMTPSection

Every error is a :class:`~netproto_twisted.core.errors.ConfigError` whose
message is one line naming the key::

    smtp.max_size: expected an integer, got 'ten'
    smtp.maxsize: unknown key (did you mean max_size?)
    netproto.toml: line 3: Expected '=' after a key in a key/value pair (column 7)

Supported field types: ``str``, ``int`` (bools rejected), ``float`` (ints
accepted; must be finite), ``bool``, ``pathlib.Path`` (``~`` expanded;
relative paths are kept relative to the daemon's working directory),
``Literal[...]`` choices, ``ipaddress`` networks and addresses (networks
parsed by :func:`~netproto_twisted.core.access.parse_network`), nested
dataclasses (TOML tables; a missing one gets its own defaults),
``list[X]`` / ``tuple[X, ...]`` (arrays; ``list[SomeDataclass]`` is an array
of tables), ``dict[str, X]`` (a table of arbitrary keys), ``X | None``
(``None`` is the "not set" default, since TOML has no null) and ``Any``.
A section's ``__post_init__`` may raise ``ValueError`` or ``ConfigError``
for checks across fields; the error is reported under the section's key.
Schema classes must be defined at module level (their hints are resolved
with :func:`typing.get_type_hints`).
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import ipaddress
import json
import math
import os
import re
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from netproto_twisted.core.access import parse_network
from netproto_twisted.core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "check_bounds",
    "config_from_toml_text",
    "describe_section",
    "field",
    "format_key",
    "load_config",
    "parse_section",
]

T = TypeVar("T")

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")
_TOML_ERROR = re.compile(r"(?s)(.*) \(at line (\d+), column (\d+)\)\Z")
_NETWORK_TYPES = (ipaddress.IPv4Network, ipaddress.IPv6Network)
_ADDRESS_TYPES = (ipaddress.IPv4Address, ipaddress.IPv6Address)
_MISSING: Any = dataclasses.MISSING


def field(
    *,
    default: Any = _MISSING,
    default_factory: Any = _MISSING,
    help: str = "",
    minimum: float | None = None,
    maximum: float | None = None,
) -> Any:
    """Declare a section field with a *help* text and optional numeric bounds (inclusive)."""
    metadata = {"help": help, "minimum": minimum, "maximum": maximum}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def format_key(*parts: str | int) -> str:
    """Join key parts as TOML would write them: ``smtp.users[2].name``; odd keys quoted."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        text = part if _BARE_KEY.match(part) else json.dumps(part)
        out = f"{out}.{text}" if out else text
    return out


def _join(prefix: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{format_key(key)}" if prefix else format_key(key)


def _describe_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = repr(value[:40] + "...") if len(value) > 43 else repr(value)
        return text
    if isinstance(value, (int, float)):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime.datetime):
        return "a date-time"
    if isinstance(value, datetime.date):
        return "a date"
    if isinstance(value, datetime.time):
        return "a time"
    return type(value).__name__


def _is_union(tp: object) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _expected(tp: Any) -> str:
    """Describe what a value of type *tp* looks like, for an error message."""
    if tp is bool:
        return "a boolean (true or false)"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if tp is Path:
        return "a path (a string)"
    if tp is ipaddress.IPv4Network:
        return "an IPv4 network"
    if tp is ipaddress.IPv6Network:
        return "an IPv6 network"
    if tp is ipaddress.IPv4Address:
        return "an IPv4 address"
    if tp is ipaddress.IPv6Address:
        return "an IPv6 address"
    if dataclasses.is_dataclass(tp):
        return "a table"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(_toml_value(c) for c in typing.get_args(tp))
    if origin in (list, tuple, Sequence):
        return "an array"
    if origin in (dict, Mapping):
        return "a table"
    if _is_union(tp):
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(members) == 1:
            return _expected(members[0])
        if members and all(m in _NETWORK_TYPES for m in members):
            return "a network (like 10.0.0.0/8)"
        if members and all(m in _ADDRESS_TYPES for m in members):
            return "an IP address"
        return " or ".join(_expected(m) for m in members)
    return getattr(tp, "__name__", str(tp))


def _mismatch(key: str, tp: Any, value: object) -> ConfigError:
    return ConfigError(key, f"expected {_expected(tp)}, got {_describe_value(value)}")


def _check_bounds(key: str, value: float, meta: Mapping[str, Any]) -> None:
    low, high = meta.get("minimum"), meta.get("maximum")
    if low is not None and value < low:
        raise ConfigError(key, f"must be >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(key, f"must be <= {high}, got {value!r}")


def check_bounds(section: object) -> None:
    """Check a section's numeric fields against their declared bounds; raise ValueError.

    For ``__post_init__``: a section built in code (from command-line
    options, say) gets the checks :func:`parse_section` gives TOML values.
    """
    for f in dataclasses.fields(section):  # type: ignore[arg-type]
        value = getattr(section, f.name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                _check_bounds(f.name, value, f.metadata)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None


def _convert(tp: Any, value: object, key: str, meta: Mapping[str, Any]) -> Any:
    """Validate a TOML *value* against type *tp*; return the typed value."""
    if tp is Any or tp is object:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _mismatch(key, tp, value)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            _check_bounds(key, value, meta)
            return value
        raise _mismatch(key, tp, value)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(key, f"expected a finite number, got {value!r}")
            _check_bounds(key, value, meta)
            return float(value)
        raise _mismatch(key, tp, value)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _mismatch(key, tp, value)
    if tp is Path:
        if isinstance(value, str) and value and "\0" not in value:
            return Path(value).expanduser()
        raise _mismatch(key, tp, value)
    if tp in _NETWORK_TYPES:
        network = _convert_network(value, key)
        if not isinstance(network, tp):
            raise _mismatch(key, tp, value)
        return network
    if tp in _ADDRESS_TYPES:
        address = _convert_address(value, key)
        if not isinstance(address, tp):
            raise _mismatch(key, tp, value)
        return address
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _mismatch(key, tp, value)
        return parse_section(tp, value, key)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        for choice in args:
            if type(choice) is type(value) and choice == value:
                return choice
        raise _mismatch(key, tp, value)
    if origin in (list, tuple, Sequence):
        if not isinstance(value, list):
            raise _mismatch(key, tp, value)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            raise TypeError(f"{key}: only tuple[X, ...] is supported, not {tp}")
        item_type = args[0] if args else Any
        items = [_convert(item_type, item, _join(key, i), meta) for i, item in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin in (dict, Mapping):
        if not isinstance(value, dict):
            raise _mismatch(key, tp, value)
        value_type = args[1] if len(args) == 2 else Any
        return {k: _convert(value_type, v, _join(key, k), meta) for k, v in value.items()}
    if _is_union(tp):
        return _convert_union(tp, value, key, meta)
    raise TypeError(f"{key}: unsupported type in a config schema: {tp!r}")


def _convert_network(value: object, key: str) -> object:
    if not isinstance(value, str):
        raise _mismatch(key, Union[ipaddress.IPv4Network, ipaddress.IPv6Network], value)  # noqa: UP007
    try:
        return parse_network(value)
    except ConfigError as exc:
        raise ConfigError(key, f"{exc.reason}, got {_describe_value(value)}") from None


def _convert_address(value: object, key: str) -> object:
    if isinstance(value, str):
        try:
            return ipaddress.ip_address(value.strip())
        except ValueError:
            pass
    raise _mismatch(key, Union[ipaddress.IPv4Address, ipaddress.IPv6Address], value)  # noqa: UP007


def _convert_union(tp: Any, value: object, key: str, meta: Mapping[str, Any]) -> Any:
    members = [a for a in typing.get_args(tp) if a is not type(None)]
    if len(members) == 1:
        return _convert(members[0], value, key, meta)
    if all(m in _NETWORK_TYPES for m in members):
        network = _convert_network(value, key)
        if not isinstance(network, tuple(members)):
            raise _mismatch(key, tp, value)
        return network
    if all(m in _ADDRESS_TYPES for m in members):
        address = _convert_address(value, key)
        if not isinstance(address, tuple(members)):
            raise _mismatch(key, tp, value)
        return address
    for member in members:
        try:
            return _convert(member, value, key, meta)
        except ConfigError as exc:
            # A value of the right shape but bad content: report that.
            if not exc.reason.startswith("expected "):
                raise
    raise _mismatch(key, tp, value)


def _fields(cls: type) -> list[tuple[dataclasses.Field[Any], Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.init]


def parse_section(cls: type[T], table: Mapping[str, object], prefix: str) -> T:
    """Validate *table* against the dataclass *cls*; return an instance.

    *prefix* names the table in error messages (``"smtp"``,
    ``"smtp.users[0]"``).  Raises :class:`ConfigError` for an unknown key
    (suggesting the closest field name), a missing required key, a value
    of the wrong type or out of bounds, or a ``__post_init__`` failure.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    schema = _fields(cls)
    names = [f.name for f, _tp in schema]
    for raw_key in table:
        key = str(raw_key)
        if key not in names:
            guess = difflib.get_close_matches(key.replace("-", "_"), names, n=1, cutoff=0.6)
            hint = f" (did you mean {guess[0]}?)" if guess else ""
            raise ConfigError(_join(prefix, key), f"unknown key{hint}")
    values: dict[str, Any] = {}
    for f, tp in schema:
        key = _join(prefix, f.name)
        if f.name in table:
            values[f.name] = _convert(tp, table[f.name], key, f.metadata)
        elif f.default is _MISSING and f.default_factory is _MISSING:
            if isinstance(tp, type) and dataclasses.is_dataclass(tp):
                values[f.name] = parse_section(tp, {}, key)
            else:
                raise ConfigError(key, "missing required key")
    try:
        return cls(**values)
    except ConfigError as exc:
        raise ConfigError(_join(prefix, exc.key) if exc.key else prefix, exc.reason) from None
    except ValueError as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(prefix, reason) from None


def _toml_value(value: object) -> str:
    """Write *value* as a TOML literal (for docs and messages)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            return "nan"
        if isinstance(value, float) and math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        inner = ", ".join(f"{format_key(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{" + inner + "}" if inner else "{}"
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def _type_name(tp: Any) -> str:
    """A short TOML-flavoured name of *tp* for the reference table."""
    simple = {
        bool: "boolean", int: "integer", float: "number", str: "string", Path: "path",
        ipaddress.IPv4Network: "IPv4 network", ipaddress.IPv6Network: "IPv6 network",
        ipaddress.IPv4Address: "IPv4 address", ipaddress.IPv6Address: "IPv6 address",
    }
    if tp in simple:
        return simple[tp]
    if tp is Any or tp is object:
        return "any"
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return "table"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(_toml_value(a) for a in args)
    if origin in (list, tuple, Sequence):
        item = args[0] if args else Any
        if isinstance(item, type) and dataclasses.is_dataclass(item):
            return "array of tables"
        return f"array of {_type_name(item)}"
    if origin in (dict, Mapping):
        return f"table of {_type_name(args[1] if len(args) == 2 else Any)}"
    if _is_union(tp):
        members = [a for a in args if a is not type(None)]
        if len(members) == 1:
            return _type_name(members[0])
        if members and all(m in _NETWORK_TYPES for m in members):
            return "network"
        if members and all(m in _ADDRESS_TYPES for m in members):
            return "IP address"
        return " or ".join(_type_name(m) for m in members)
    return getattr(tp, "__name__", str(tp))


def describe_section(cls: type, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """Return ``(key, type, default, help)`` rows describing the dataclass *cls*, for docs.

    Nested tables appear as dotted keys (``tls.cert``); the fields of an
    array of tables as ``users[].name``.  Defaults are written in TOML
    syntax; ``(required)`` marks a key without one and ``(not set)`` a
    ``None`` default.
    """
    rows: list[tuple[str, str, str, str]] = []
    for f, tp in _fields(cls):
        key = _join(prefix, f.name)
        help_text = str(f.metadata.get("help", ""))
        if f.default is not _MISSING:
            default = "(not set)" if f.default is None else _toml_value(f.default)
        elif f.default_factory is not _MISSING:
            factory: Any = f.default_factory
            made = factory()
            default = "" if dataclasses.is_dataclass(made) else _toml_value(made)
        elif isinstance(tp, type) and dataclasses.is_dataclass(tp):
            default = ""
        else:
            default = "(required)"
        rows.append((key, _type_name(tp), default, help_text))
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            rows.extend(describe_section(tp, key))
        item = typing.get_args(tp)[0] if typing.get_origin(tp) in (list, tuple) else None
        if isinstance(item, type) and dataclasses.is_dataclass(item):
            rows.extend(describe_section(item, key + "[]"))
    return rows


def _syntax_error(source: str, exc: Exception, text: str) -> ConfigError:
    message = " ".join(str(exc).split())
    found = _TOML_ERROR.match(message)
    if found:
        what, line, column = found.groups()
        return ConfigError(source, f"line {line}: {what} (column {column})")
    if message.endswith(" (at end of document)"):
        last = text.count("\n") + 1
        return ConfigError(source, f"line {last}: {message[:-21]} (at end of file)")
    return ConfigError(source, message)


def config_from_toml_text(
    text: str, sections: Mapping[str, type], source: str = "<config>"
) -> dict[str, object]:
    """Parse TOML *text*: each top-level table through its dataclass in *sections*.

    Returns one entry per registered section (defaults for those absent).
    *source* names the text in syntax errors.  Raises :class:`ConfigError`.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(source, exc, text) from None
    except RecursionError:
        raise ConfigError(source, "nested too deeply") from None
    unknown = [name for name in document if name not in sections]
    if unknown:
        if len(unknown) == 1:
            guess = difflib.get_close_matches(unknown[0], list(sections), n=1, cutoff=0.6)
            hint = f" (did you mean {guess[0]}?)" if guess else ""
            raise ConfigError(format_key(unknown[0]), f"unknown section{hint}")
        names = ", ".join(format_key(n) for n in unknown)
        known = ", ".join(sections) or "none"
        raise ConfigError("", f"unknown sections: {names} (known: {known})")
    result: dict[str, object] = {}
    for name, cls in sections.items():
        table = document.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(
                format_key(name), f"expected a table, got {_describe_value(table)}"
            )
        result[name] = parse_section(cls, table, format_key(name))
    return result


def load_config(
    path: str | os.PathLike[str], sections: Mapping[str, type]
) -> dict[str, object]:
    """Read and validate the TOML file at *path*; see :func:`config_from_toml_text`."""
    source = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(source, f"cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(source, f"line {line}: not valid UTF-8") from None
    return config_from_toml_text(text, sections, source)
