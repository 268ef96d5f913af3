"""Tests for netproto_twisted.core.config: dataclass schemas, TOML, one-line errors."""

# trial's assertion methods are untyped.
# mypy: disable-error-code="no-untyped-call"
# Our config.field is a dataclasses.field wrapper, which ruff cannot see through.

from __future__ import annotations

import datetime
import ipaddress
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from netproto_twisted.core.access import Network
from netproto_twisted.core.config import (
    check_bounds,
    config_from_toml_text,
    describe_section,
    field,
    format_key,
    load_config,
    parse_section,
)
from netproto_twisted.core.errors import ConfigError


@dataclass(frozen=True)
class TLSSection:
    cert: Path | None = field(default=None, help="certificate file (PEM)")
    required: bool = field(default=False, help="refuse plaintext sessions")


@dataclass(frozen=True)
class User:
    name: str
    quota: int = field(default=100, minimum=0, maximum=1000)


@dataclass(frozen=True)
class SMTPSection:
    hostname: str = field(default="localhost", help="name in the greeting")
    max_size: int = field(default=10_000_000, minimum=1, help="largest message, bytes")
    timeout: float = field(default=30.0, minimum=0.5)
    enabled: bool = True
    listen: tuple[str, ...] = ("tcp:2525",)
    tags: list[str] = field(default_factory=list)
    data_dir: Path = Path("netproto-data")
    mode: Literal["mx", "submission"] = "mx"
    relay_networks: tuple[Network, ...] = ()
    only_v4: ipaddress.IPv4Network | None = None
    bind: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    tls: TLSSection = field(default_factory=TLSSection)
    users: list[User] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    port: int | str = 25

    def __post_init__(self) -> None:
        if self.mode == "submission" and not self.tls.required:
            raise ValueError("mode = 'submission' needs tls.required = true")
        if self.timeout > 3600:
            raise ConfigError("timeout", "must be at most an hour")


@dataclass(frozen=True)
class Required:
    name: str
    extra: Any = None


SECTIONS: dict[str, type] = {"smtp": SMTPSection, "pop3": TLSSection}


def error_of(text: str, sections: dict[str, type] | None = None) -> str:
    try:
        config_from_toml_text(text, sections or SECTIONS, source="netproto.toml")
    except ConfigError as exc:
        return str(exc)
    raise AssertionError("no ConfigError")


class ParseTests(unittest.SynchronousTestCase):
    def test_missing_sections_get_defaults(self) -> None:
        result = config_from_toml_text("", SECTIONS)
        self.assertEqual(result, {"smtp": SMTPSection(), "pop3": TLSSection()})

    def test_every_type(self) -> None:
        text = """
[smtp]
hostname = "mx.example.org"
max_size = 1000
timeout = 5
enabled = false
listen = ["tcp:25", "tcp6:25"]
tags = ["a", "b"]
data_dir = "~/mail"
mode = "submission"
relay_networks = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"]
only_v4 = "127.0.0.0/8"
bind = "::1"
aliases = { postmaster = "root", "odd key" = "x" }
port = "smtp"

[smtp.tls]
cert = "/etc/cert.pem"
required = true

[[smtp.users]]
name = "alice"

[[smtp.users]]
name = "bob"
quota = 5
"""
        smtp = config_from_toml_text(text, SECTIONS)["smtp"]
        assert isinstance(smtp, SMTPSection)
        self.assertEqual(smtp.hostname, "mx.example.org")
        self.assertEqual(smtp.max_size, 1000)
        self.assertEqual(smtp.timeout, 5.0)
        self.assertIsInstance(smtp.timeout, float)
        self.assertFalse(smtp.enabled)
        self.assertEqual(smtp.listen, ("tcp:25", "tcp6:25"))
        self.assertEqual(smtp.tags, ["a", "b"])
        self.assertEqual(smtp.data_dir, Path("~/mail").expanduser())
        self.assertEqual(smtp.mode, "submission")
        self.assertEqual(
            smtp.relay_networks,
            (
                ipaddress.IPv4Network("10.0.0.0/8"),
                ipaddress.IPv6Network("2001:db8::/32"),
                ipaddress.IPv4Network("192.0.2.1/32"),
            ),
        )
        self.assertEqual(smtp.only_v4, ipaddress.IPv4Network("127.0.0.0/8"))
        self.assertEqual(smtp.bind, ipaddress.IPv6Address("::1"))
        self.assertEqual(smtp.tls, TLSSection(cert=Path("/etc/cert.pem"), required=True))
        self.assertEqual(smtp.users, [User("alice"), User("bob", 5)])
        self.assertEqual(smtp.aliases, {"postmaster": "root", "odd key": "x"})
        self.assertEqual(smtp.port, "smtp")

    def test_union_takes_first_matching(self) -> None:
        self.assertEqual(parse_section(SMTPSection, {"port": 587}, "smtp").port, 587)

    def test_missing_nested_dataclass_without_default_uses_its_defaults(self) -> None:
        @dataclass(frozen=True)
        class Outer:
            tls: TLSSection

        self.assertEqual(parse_section(Outer, {}, "x").tls, TLSSection())

    def test_any_field_passes_through(self) -> None:
        when = datetime.date(2026, 11, 21)
        self.assertEqual(parse_section(Required, {"name": "n", "extra": when}, "r").extra, when)

    def test_load_config_file(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "netproto.toml"
            path.write_text('[pop3]\ncert = "c.pem"\n', encoding="utf-8")
            result = load_config(path, SECTIONS)
        self.assertEqual(result["pop3"], TLSSection(cert=Path("c.pem")))


class ErrorTests(unittest.SynchronousTestCase):
    """Every error is one line naming the key."""

    cases: list[tuple[str, str]] = [
        ("[smtp]\nmax_size = 'ten'", "smtp.max_size: expected an integer, got 'ten'"),
        ("[smtp]\nmax_size = true", "smtp.max_size: expected an integer, got true"),
        ("[smtp]\nmax_size = 1.5", "smtp.max_size: expected an integer, got 1.5"),
        ("[smtp]\nmax_size = 0", "smtp.max_size: must be >= 1, got 0"),
        ("[smtp]\ntimeout = nan", "smtp.timeout: expected a finite number, got nan"),
        ("[smtp]\ntimeout = inf", "smtp.timeout: expected a finite number, got inf"),
        ("[smtp]\ntimeout = false", "smtp.timeout: expected a number, got false"),
        ("[smtp]\ntimeout = 0.1", "smtp.timeout: must be >= 0.5, got 0.1"),
        ("[smtp]\nenabled = 'yes'", "smtp.enabled: expected a boolean (true or false), got 'yes'"),
        ("[smtp]\nenabled = 1", "smtp.enabled: expected a boolean (true or false), got 1"),
        ("[smtp]\nhostname = 42", "smtp.hostname: expected a string, got 42"),
        ("[smtp]\nhostname = [1]", "smtp.hostname: expected a string, got an array"),
        ("[smtp]\nhostname = {a = 1}", "smtp.hostname: expected a string, got a table"),
        ("[smtp]\nhostname = 1979-05-27", "smtp.hostname: expected a string, got a date"),
        (
            "[smtp]\nhostname = 1979-05-27T07:32:00Z",
            "smtp.hostname: expected a string, got a date-time",
        ),
        ("[smtp]\nhostname = 07:32:00", "smtp.hostname: expected a string, got a time"),
        ("[smtp]\ndata_dir = ''", "smtp.data_dir: expected a path (a string), got ''"),
        ("[smtp]\nlisten = 'tcp:25'", "smtp.listen: expected an array, got 'tcp:25'"),
        ("[smtp]\nlisten = ['tcp:25', 25]", "smtp.listen[1]: expected a string, got 25"),
        (
            "[smtp]\nmode = 'relay'",
            "smtp.mode: expected one of \"mx\", \"submission\", got 'relay'",
        ),
        (
            "[smtp]\nrelay_networks = ['10.0.0.0/8', '10.0.0.0/33']",
            "smtp.relay_networks[1]: not a network, got '10.0.0.0/33'",
        ),
        (
            "[smtp]\nrelay_networks = ['10.0.0.1/8']",
            "smtp.relay_networks[0]: host bits set (did you mean 10.0.0.0/8?), got '10.0.0.1/8'",
        ),
        (
            "[smtp]\nrelay_networks = [10]",
            "smtp.relay_networks[0]: expected a network (like 10.0.0.0/8), got 10",
        ),
        ("[smtp]\nonly_v4 = '::/0'", "smtp.only_v4: expected an IPv4 network, got '::/0'"),
        ("[smtp]\nbind = 'localhost'", "smtp.bind: expected an IP address, got 'localhost'"),
        ("[smtp]\ntls = 5", "smtp.tls: expected a table, got 5"),
        ("[smtp.tls]\ncret = 'x'", "smtp.tls.cret: unknown key (did you mean cert?)"),
        ("[smtp.tls]\ncert = 5", "smtp.tls.cert: expected a path (a string), got 5"),
        (
            "[[smtp.users]]\nname = 'a'\n[[smtp.users]]\nquota = 1",
            "smtp.users[1].name: missing required key",
        ),
        (
            "[[smtp.users]]\nname = 'a'\nquota = -1",
            "smtp.users[0].quota: must be >= 0, got -1",
        ),
        (
            "[[smtp.users]]\nname = 'a'\nquota = 5000",
            "smtp.users[0].quota: must be <= 1000, got 5000",
        ),
        ("[smtp]\nusers = [1]", "smtp.users[0]: expected a table, got 1"),
        ("[smtp]\naliases = {a = 1}", "smtp.aliases.a: expected a string, got 1"),
        ("[smtp]\naliases = {'x y' = 1}", 'smtp.aliases."x y": expected a string, got 1'),
        ("[smtp]\nport = [25]", "smtp.port: expected an integer or a string, got an array"),
        ("[smtp]\nmaxsize = 5", "smtp.maxsize: unknown key (did you mean max_size?)"),
        ("[smtp]\nmax-size = 5", "smtp.max-size: unknown key (did you mean max_size?)"),
        ("[smtp]\nzzz = 5", "smtp.zzz: unknown key"),
        ("[smtp]\n\"a\\nb\" = 5", 'smtp."a\\nb": unknown key'),
        ("[smpt]\nx = 1", "smpt: unknown section (did you mean smtp?)"),
        ("[web]\n[ftp]", "unknown sections: web, ftp (known: smtp, pop3)"),
        ("smtp = 5", "smtp: expected a table, got 5"),
        (
            "[smtp]\nmode = 'submission'",
            "smtp: mode = 'submission' needs tls.required = true",
        ),
        ("[smtp]\ntimeout = 7200", "smtp.timeout: must be at most an hour"),
        (
            "[smtp]\nhostname = 'a'\nhostname = 'b'",
            "netproto.toml: line 3: Cannot overwrite a value (at end of file)",
        ),
        (
            "[smtp]\n\nhostname 'x'",
            "netproto.toml: line 3: Expected '=' after a key in a key/value pair (column 10)",
        ),
        (
            "[smtp]\nhostname = \"\\u0000\x00\"",
            "netproto.toml: line 2: Illegal character '\\x00' (column 19)",
        ),
    ]

    def test_messages(self) -> None:
        for text, message in self.cases:
            got = error_of(text)
            self.assertEqual(got, message, text)
            self.assertNotIn("\n", got)

    def test_required_key(self) -> None:
        self.assertEqual(
            error_of("", {"auth": Required}), "auth.name: missing required key"
        )
        with self.assertRaises(ConfigError) as caught:
            parse_section(Required, {}, "auth")
        self.assertEqual(caught.exception.key, "auth.name")
        self.assertEqual(caught.exception.reason, "missing required key")

    def test_file_errors(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            missing = Path(tmp) / "none.toml"
            with self.assertRaises(ConfigError) as caught:
                load_config(missing, SECTIONS)
            self.assertEqual(
                str(caught.exception), f"{missing}: cannot read: No such file or directory"
            )
            binary = Path(tmp) / "bin.toml"
            binary.write_bytes(b"[smtp]\n\nhostname = '\xff'\n")
            with self.assertRaises(ConfigError) as caught:
                load_config(binary, SECTIONS)
            self.assertEqual(str(caught.exception), f"{binary}: line 3: not valid UTF-8")

    def test_schema_errors_are_type_errors(self) -> None:
        @dataclass
        class Bad:
            when: datetime.date = datetime.date(2000, 1, 1)

        with self.assertRaises(TypeError):
            parse_section(Bad, {"when": datetime.date(2001, 1, 1)}, "bad")
        with self.assertRaises(TypeError):
            parse_section(int, {}, "x")

    def test_format_key(self) -> None:
        self.assertEqual(format_key("smtp", "users", 2, "name"), "smtp.users[2].name")
        self.assertEqual(format_key("a b", "c"), '"a b".c')


class DescribeTests(unittest.SynchronousTestCase):
    def test_rows(self) -> None:
        rows = {row[0]: row[1:] for row in describe_section(SMTPSection, "smtp")}
        self.assertEqual(rows["smtp.hostname"], ("string", '"localhost"', "name in the greeting"))
        self.assertEqual(rows["smtp.max_size"], ("integer", "10000000", "largest message, bytes"))
        self.assertEqual(rows["smtp.timeout"], ("number", "30.0", ""))
        self.assertEqual(rows["smtp.enabled"], ("boolean", "true", ""))
        self.assertEqual(rows["smtp.listen"], ("array of string", '["tcp:2525"]', ""))
        self.assertEqual(rows["smtp.tags"], ("array of string", "[]", ""))
        self.assertEqual(rows["smtp.data_dir"], ("path", '"netproto-data"', ""))
        self.assertEqual(rows["smtp.mode"], ('one of "mx", "submission"', '"mx"', ""))
        self.assertEqual(rows["smtp.relay_networks"][0], "array of network")
        self.assertEqual(rows["smtp.only_v4"], ("IPv4 network", "(not set)", ""))
        self.assertEqual(rows["smtp.bind"][0], "IP address")
        self.assertEqual(rows["smtp.tls"], ("table", "", ""))
        self.assertEqual(rows["smtp.tls.cert"], ("path", "(not set)", "certificate file (PEM)"))
        self.assertEqual(rows["smtp.users"], ("array of tables", "[]", ""))
        self.assertEqual(rows["smtp.users[].name"], ("string", "(required)", ""))
        self.assertEqual(rows["smtp.users[].quota"], ("integer", "100", ""))
        self.assertEqual(rows["smtp.aliases"], ("table of string", "{}", ""))
        self.assertEqual(rows["smtp.port"], ("integer or string", "25", ""))

    def test_defaults_are_valid_toml_that_parse_back(self) -> None:
        """The documented defaults, written back as TOML, give the default section."""
        lines = ["[smtp]"]
        for key, _type, default, _help in describe_section(SMTPSection, "smtp"):
            if default and not default.startswith("(") and "[]" not in key and key.count(".") == 1:
                lines.append(f"{key.split('.', 1)[1]} = {default}")
        self.assertEqual(config_from_toml_text("\n".join(lines), SECTIONS)["smtp"], SMTPSection())


# --- Hypothesis -------------------------------------------------------------

toml_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.datetimes(),
    st.dates(),
    st.times(),
    st.sampled_from(["mx", "submission", "10.0.0.0/8", "::1", "10.0.0.1/8", "x.pem", ""]),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(["name", "quota", "cert", "required", "x"]), inner, max_size=3
        ),
    ),
    max_leaves=8,
)
smtp_keys = st.sampled_from(
    [key for key, *_rest in describe_section(SMTPSection) if "." not in key and "[" not in key]
    + ["bogus"]
)


class PropertyTests(unittest.SynchronousTestCase):
    @settings(max_examples=400, deadline=None)
    @given(st.dictionaries(smtp_keys, toml_values, max_size=6))
    def test_wrong_values_only_raise_one_line_config_errors(self, table: dict[str, Any]) -> None:
        try:
            result = parse_section(SMTPSection, table, "smtp")
        except ConfigError as exc:
            message = str(exc)
            self.assertNotIn("\n", message)
            self.assertTrue(message.startswith("smtp"), message)
            self.assertTrue(exc.key.startswith("smtp"), exc.key)
        else:
            self.assertIsInstance(result, SMTPSection)

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=60))
    def test_any_text_only_raises_config_error(self, text: str) -> None:
        try:
            config_from_toml_text(text, SECTIONS, source="f.toml")
        except ConfigError as exc:
            self.assertNotIn("\n", str(exc))

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(
            st.tuples(
                smtp_keys,
                st.sampled_from(
                    ['1', '0', '-7', '1.5', 'nan', '-inf', 'true', '"x"', '""', '"mx"',
                     '"10.0.0.0/8"', '"::1"', '[]', '[1, "a"]', '["a"]', '{}', '{a = 1}',
                     '{name = "n"}', '[{name = "a"}]', '[{quota = 1}]', '1979-05-27',
                     '07:32:00', '1979-05-27T07:32:00Z', '{cert = "c", required = 1}']
                ),
            ),
            max_size=6,
        )
    )
    def test_toml_documents_only_raise_one_line_config_errors(
        self, assignments: list[tuple[str, str]]
    ) -> None:
        text = "[smtp]\n" + "\n".join(f"{key} = {value}" for key, value in assignments)
        try:
            result = config_from_toml_text(text, SECTIONS, source="f.toml")
        except ConfigError as exc:
            self.assertNotIn("\n", str(exc))
            self.assertRegex(str(exc), r"^(smtp[.:]|f\.toml: line \d+: )")
        else:
            self.assertIsInstance(result["smtp"], SMTPSection)

    @settings(max_examples=200, deadline=None)
    @given(
        st.text(max_size=30),
        st.integers(1, 2**40),
        st.floats(0.5, 3600, allow_nan=False),
        st.lists(st.text(max_size=10), max_size=4),
        st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=3),
    )
    def test_valid_values_round_trip(
        self,
        hostname: str,
        max_size: int,
        timeout: float,
        tags: list[str],
        aliases: dict[str, str],
    ) -> None:
        text = "\n".join(
            [
                "[smtp]",
                f"hostname = {toml_str(hostname)}",
                f"max_size = {max_size}",
                f"timeout = {timeout!r}",
                "tags = [" + ", ".join(toml_str(t) for t in tags) + "]",
                "aliases = {"
                + ", ".join(f"{toml_str(k)} = {toml_str(v)}" for k, v in aliases.items())
                + "}",
            ]
        )
        smtp = config_from_toml_text(text, SECTIONS)["smtp"]
        assert isinstance(smtp, SMTPSection)
        self.assertEqual(
            (smtp.hostname, smtp.max_size, smtp.timeout, smtp.tags, smtp.aliases),
            (hostname, max_size, timeout, tags, aliases),
        )
        self.assertFalse(math.isnan(smtp.timeout))


def toml_str(text: str) -> str:
    """A TOML basic string (JSON escapes are TOML escapes, except DEL must be escaped)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


class DescribeDataclassDefaultTests(unittest.SynchronousTestCase):
    """A default made of dataclasses is documented as TOML inline tables."""

    def test_array_of_tables_default(self) -> None:
        from netproto_twisted.sockserv.tap import Config

        rows = {key: default for key, _type, default, _help in describe_section(Config)}
        first = '[{name = "echo", handler = "echo", listen = ['
        self.assertTrue(rows["services"].startswith(first), rows["services"])
        self.assertNotIn("SocketService(", rows["services"])


@dataclass(frozen=True)
class _Bounded:
    port: int = field(default=25, minimum=1, maximum=65535)
    delay: float = field(default=1.0, minimum=0.0)
    name: str = field(default="x")
    enabled: bool = field(default=True)


class CheckBoundsTests(unittest.SynchronousTestCase):
    """check_bounds: the declared bounds hold for sections built in code too."""

    def test_in_bounds(self) -> None:
        check_bounds(_Bounded(port=65535, delay=0.0))

    def test_out_of_bounds_names_the_field(self) -> None:
        for kwargs, words in (
            ({"port": 0}, "port: must be >= 1"),
            ({"port": 70000}, "port: must be <= 65535"),
            ({"delay": -0.5}, "delay: must be >= 0.0"),
        ):
            with self.assertRaises(ValueError) as caught:
                check_bounds(_Bounded(**kwargs))
            self.assertIn(words, str(caught.exception))
