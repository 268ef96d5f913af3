"""Limits on everything a peer controls, their defaults, and the twistd options that set them.

:class:`Limits` holds one value per limit.  Every server accepts the same
command-line flags through :class:`LimitsOptionsMixin`::

    --max-connections N       --max-per-ip N          --idle-timeout SECONDS
    --tls-handshake-timeout SECONDS                   --max-line-length BYTES
    --command-rate PER_SECOND --max-failed-logins N
    --login-delay SECONDS     --login-delay-max SECONDS
    --line-timeout SECONDS    --transfer-timeout SECONDS
    --min-transfer-rate BYTES_PER_SECOND              --backlog N
    --auth-mechanisms NAME,NAME,...

A protocol whose needs differ from the shared defaults (IMAP's 30-minute
autologout timer, say) sets ``limits_defaults`` on its Options class to a
:class:`Limits` built with :func:`dataclasses.replace` or keyword arguments;
the flags then override those defaults.

:class:`RateLimiter` is the token bucket servers use for ``command_rate``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

from twisted.internet.interfaces import IReactorTime
from twisted.python import usage

from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.sasl import MECHANISM_PREFERENCE

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "LimitsOptionsMixin",
    "RateLimiter",
    "limits_from_options",
    "limits_options",
]


T = TypeVar("T", int, float)


def _limit(default: T, text: str) -> T:
    """A Limits field with its help text (read by config.describe_section)."""
    result: T = dataclasses.field(default=default, metadata={"help": text})
    return result


@dataclass(frozen=True)
class Limits:
    """The limits a server applies to its peers; every field has a default.

    :ivar max_connections: simultaneous connections a server accepts in total
        (1000: far below the usual 1024+ file-descriptor limit once listening
        sockets, log files and stores are counted, yet more than one small
        machine's worth of mail clients).
    :ivar max_connections_per_ip: simultaneous connections from one IPv4
        address or one IPv6 /64 (50: a mail client opens ~5 IMAP connections
        per account, so an office of ten behind one NAT address fits, while a
        single host cannot take the whole server).
    :ivar idle_timeout: seconds without input before a connection is closed
        (300: RFC 5321 section 4.5.3.2.7's five-minute server timeout).
    :ivar tls_handshake_timeout: seconds a TLS handshake may take (30).
    :ivar max_line_length: longest command or reply line accepted, in bytes,
        its CRLF not counted, as every line length in
        :mod:`~netproto_twisted.core.framing` (2048: four times SMTP's 512, room
        for long AUTH blobs).
    :ivar command_rate: sustained commands per second per connection (100).
    :ivar command_burst: commands a connection may send at once before
        ``command_rate`` applies (200: covers a pipelined SMTP transaction
        with many recipients).
    :ivar login_delay_base: seconds of delay after the first failed login
        from an address; doubles with each further failure (1.0).
    :ivar login_delay_max: the cap on that delay (30.0).
    :ivar max_failed_logins: failed logins in one session before the server
        disconnects it (5).
    :ivar login_cache_ttl: seconds a password that just succeeded is
        remembered (as a keyed digest) so that the same user's next login
        skips PBKDF2 (300; ``0`` turns it off; see
        :mod:`~netproto_twisted.core.login_cache`).
    :ivar line_timeout: seconds from the first byte of a command line to its
        end (300, RFC 5321's five minutes): a peer trickling one byte at a
        time, which the idle timeout never catches, is closed with the
        protocol's timeout reply.
    :ivar transfer_timeout: seconds a data transfer (SMTP DATA or BDAT, an
        IMAP literal, an FTP upload) gets at first, and the most it is ever
        granted ahead (300).
    :ivar min_transfer_rate: bytes per second a transfer must average: each
        byte received adds ``1 / min_transfer_rate`` seconds to its deadline
        (500, Postfix's ``smtpd_min_data_rate``).
    :ivar backlog: connections the kernel queues per listening socket before
        the server accepts them (1024; Twisted's default of 50 makes bursts of
        connections wait a second for a SYN retry; the kernel caps it at
        ``net.core.somaxconn``).
    :ivar auth_mechanisms: the SASL mechanisms a server may offer, in the
        order to advertise them (empty, the default: every mechanism the
        credential store can serve, strongest first).  What is offered is
        still limited by TLS and by the store: CRAM-MD5 only when some user
        has a CRAM-MD5 secret.
    """

    max_connections: int = _limit(1000, "simultaneous connections in total")
    max_connections_per_ip: int = _limit(50, "simultaneous connections per address (IPv6: /64)")
    idle_timeout: float = _limit(300.0, "seconds without input before a connection is closed")
    tls_handshake_timeout: float = _limit(30.0, "seconds a TLS handshake may take")
    max_line_length: int = _limit(2048, "longest line accepted, in bytes, CRLF not counted")
    command_rate: float = _limit(100.0, "sustained commands per second per connection")
    command_burst: int = _limit(200, "commands a connection may send at once")
    login_delay_base: float = _limit(1.0, "seconds of delay after a failed login (doubles)")
    login_delay_max: float = _limit(30.0, "longest failed-login delay, in seconds")
    max_failed_logins: int = _limit(5, "failed logins before a session is dropped")
    login_cache_ttl: float = _limit(300.0, "seconds a verified password is remembered (0: off)")
    line_timeout: float = _limit(300.0, "seconds from a command line's first byte to its end")
    transfer_timeout: float = _limit(300.0, "seconds a data transfer gets first and at most ahead")
    min_transfer_rate: float = _limit(500.0, "bytes per second a data transfer must average")
    backlog: int = _limit(1024, "connections queued per listening socket before accept")
    auth_mechanisms: tuple[str, ...] = dataclasses.field(
        default=(),
        metadata={"help": "SASL mechanisms to offer, in order (empty: all the store can serve)"},
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "auth_mechanisms", _mechanisms(self.auth_mechanisms))
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _NOT_NUMBERS or (f.name in _ZERO_ALLOWED and value == 0):
                continue
            if f.type in ("int", int):
                _check_int(f.name, value)
            else:
                _check_float(f.name, value)
        if self.login_delay_max < self.login_delay_base:
            raise ConfigError(
                "login_delay_max",
                f"must be >= login_delay_base ({self.login_delay_base}),"
                f" got {self.login_delay_max}",
            )


#: Limits fields that are not numbers (checked on their own).
_NOT_NUMBERS = frozenset({"auth_mechanisms"})
#: Limits fields for which 0 means "off".
_ZERO_ALLOWED = frozenset({"login_cache_ttl"})


def _mechanisms(value: object) -> tuple[str, ...]:
    """Check and normalise an ``auth_mechanisms`` value: known names, upper case, no repeats."""
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError("auth_mechanisms", f"expected a list of names, got {value!r}")
    names = tuple(dict.fromkeys(v.strip().upper() for v in value))
    unknown = [n for n in names if n not in MECHANISM_PREFERENCE]
    if unknown:
        known = ", ".join(MECHANISM_PREFERENCE)
        raise ConfigError(
            "auth_mechanisms", f"unknown mechanism {unknown[0]!r} (known: {known})"
        )
    return names


def _check_int(key: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"expected an integer, got {value!r}")
    if value < 1:
        raise ConfigError(key, f"must be a positive integer, got {value}")


def _check_float(key: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(key, f"expected a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(key, f"must be a positive number, got {value}")


DEFAULT_LIMITS = Limits()
"""The shared defaults: ``Limits()``."""

#: The command-line flag of each Limits field (command_burst has none).
_FLAGS: tuple[tuple[str, str], ...] = (
    ("max-connections", "max_connections"),
    ("max-per-ip", "max_connections_per_ip"),
    ("idle-timeout", "idle_timeout"),
    ("tls-handshake-timeout", "tls_handshake_timeout"),
    ("max-line-length", "max_line_length"),
    ("command-rate", "command_rate"),
    ("max-failed-logins", "max_failed_logins"),
    ("login-delay", "login_delay_base"),
    ("login-delay-max", "login_delay_max"),
    ("login-cache-ttl", "login_cache_ttl"),
    ("line-timeout", "line_timeout"),
    ("transfer-timeout", "transfer_timeout"),
    ("min-transfer-rate", "min_transfer_rate"),
    ("backlog", "backlog"),
    ("auth-mechanisms", "auth_mechanisms"),
)
_HELP = {f.name: str(f.metadata.get("help", "")) for f in fields(Limits)}


def int_option(options: Mapping[str, Any], name: str) -> int:
    """Return the ``--name`` option as an int, or raise a one-line :class:`usage.UsageError`."""
    try:
        return int(options[name])
    except ValueError:
        raise usage.UsageError(f"--{name}: not a number: {options[name]!r}") from None


def limits_options(defaults: Limits = DEFAULT_LIMITS) -> list[list[Any]]:
    """Return ``optParameters`` rows for every limit flag, with *defaults* in the help text.

    The rows' own default is ``None``, so that :func:`limits_from_options`
    can tell a flag that was given from one that was not.
    """
    return [
        [flag, None, None, f"{_HELP[name]} [default: {_shown(getattr(defaults, name))}]"]
        for flag, name in _FLAGS
    ]


def _shown(value: object) -> object:
    if isinstance(value, tuple):
        return ",".join(value) or "all"
    return value


def limits_from_options(
    opts: Mapping[str, object], defaults: Limits = DEFAULT_LIMITS
) -> Limits:
    """Build :class:`Limits` from parsed options: given flags override *defaults*.

    Values may be strings (straight from the command line) or numbers.
    Raises :class:`ConfigError` naming the flag, in one line, for a value that
    is not a positive number (or integer, where the limit counts something).
    """
    values: dict[str, Any] = {}
    types = {f.name: f.type for f in fields(Limits)}
    for flag, name in _FLAGS:
        raw = opts.get(flag)
        if raw is None:
            continue
        if name in _NOT_NUMBERS:
            values[name] = raw
            continue
        want_int = types[name] in ("int", int)
        try:
            value = _coerce(raw, want_int)
            if not (name in _ZERO_ALLOWED and value == 0):
                (_check_int if want_int else _check_float)(f"--{flag}", value)
        except ValueError:
            kind = "a positive integer" if want_int else "a positive number"
            raise ConfigError(f"--{flag}", f"expected {kind}, got {raw!r}") from None
        values[name] = value
    try:
        return _replace(defaults, values)
    except ConfigError as exc:
        flag = next((f for f, n in _FLAGS if n == exc.key), exc.key)
        raise ConfigError(f"--{flag}", exc.reason) from None


def _coerce(raw: object, want_int: bool) -> object:
    if isinstance(raw, str):
        text = raw.strip()
        return int(text) if want_int else float(text)
    return raw


def _replace(defaults: Limits, values: Mapping[str, Any]) -> Limits:
    merged = {f.name: getattr(defaults, f.name) for f in fields(Limits)}
    merged.update(values)
    return Limits(**merged)


class LimitsOptionsMixin(usage.Options):
    """``usage.Options`` mixin adding the limit flags; puts :class:`Limits` at ``self["limits"]``.

    Subclasses may set ``limits_defaults``.  A subclass that defines
    ``postOptions`` must call ``super().postOptions()``.  A bad value becomes a
    one-line :class:`usage.UsageError`.
    """

    limits_defaults: ClassVar[Limits] = DEFAULT_LIMITS
    optParameters: ClassVar[list[list[Any]]] = limits_options()

    def postOptions(self) -> None:
        """Validate the limit flags and store the result as ``self["limits"]``."""
        super().postOptions()  # type: ignore[no-untyped-call]
        try:
            self["limits"] = limits_from_options(self, self.limits_defaults)
        except ConfigError as exc:
            raise usage.UsageError(str(exc)) from None


#: Slack for float rounding: 20 refills of 0.05 tokens must make one whole token.
_EPSILON = 1e-9


class RateLimiter:
    """A token bucket: ``rate`` tokens a second, at most ``burst`` saved up.

    Starts full.  Time comes from *clock* (an ``IReactorTime``), so tests
    drive it with ``MemoryReactorClock``.
    """

    def __init__(self, clock: IReactorTime, rate: float, burst: float) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ConfigError("rate", f"must be a positive number, got {rate}")
        if not (math.isfinite(burst) and burst >= 1):
            raise ConfigError("burst", f"must be at least 1, got {burst}")
        self._now: Callable[[], float] = clock.seconds
        self.rate = float(rate)
        self.burst = float(burst)
        self._tokens = self.burst
        self._stamp = self._now()

    @property
    def tokens(self) -> float:
        """The tokens available now."""
        self._refill()
        return self._tokens

    def _refill(self) -> None:
        now = self._now()
        elapsed = now - self._stamp
        self._stamp = now
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)

    def allow(self, cost: float = 1.0) -> bool:
        """Take *cost* tokens and return True, or return False (taking none) if too few."""
        self._refill()
        if self._tokens + _EPSILON >= cost:
            self._tokens -= cost
            return True
        return False

    def wait_time(self, cost: float = 1.0) -> float:
        """Return the seconds until :meth:`allow` (*cost*) would succeed (0.0 if it would now)."""
        self._refill()
        missing = cost - self._tokens
        return 0.0 if missing <= _EPSILON else missing / self.rate
