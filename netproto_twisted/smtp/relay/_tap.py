"""The relay's side of ``twistd netproto-smtp``: its options, and its settings from the config.

:mod:`netproto_twisted.smtp.tap` owns the ``[smtp]`` section (its
``Config``); this module knows which of its keys are the relay's:
:data:`RELAY_KNOBS` maps each numeric key (also a ``--the-key VALUE``
option, see :func:`relay_options`) to its
:class:`~netproto_twisted.smtp.relay.settings.RelaySettings` field,
:func:`settings_of` builds (and so checks) the settings from a config, and
:func:`relay_for` builds the :class:`~netproto_twisted.smtp.relay.service.Relay`.
It takes the config as anything with the ``[smtp]`` attributes
(:class:`RelayConfig`), so it imports nothing from the tap.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.reactors import IServerReactor
from netproto_twisted.smtp.relay.queue import Spool
from netproto_twisted.smtp.relay.service import Relay
from netproto_twisted.smtp.relay.settings import RelaySettings, SettingError

__all__ = [
    "RELAY_KNOBS",
    "SETTING_KEYS",
    "RelayConfig",
    "check_relay_keys",
    "host_port",
    "relay_for",
    "relay_options",
    "settings_of",
]

#: The relay's numeric ``[smtp]`` keys, each also ``--the-key VALUE`` (see
#: :func:`relay_options`), and the :class:`RelaySettings` field each sets.
RELAY_KNOBS: dict[str, str] = {
    "queue_lifetime": "lifetime",
    "retry_min": "min_backoff",
    "retry_max": "max_backoff",
    "retry_jitter": "jitter",
    "delay_warning": "delay_warning",
    "per_destination": "per_destination",
    "relay_connections": "max_connections",
    "relay_port": "port",
    "relay_timeout": "timeout",
    "relay_idle_timeout": "idle_timeout",
    "relay_stop_grace": "stop_grace",
    "dead_host_time": "dead_host_time",
    "max_dead_host_time": "max_dead_host_time",
    "max_active_entries": "max_active_entries",
    "queue_poll_interval": "poll_interval",
}
#: Each :class:`RelaySettings` field's ``[smtp]`` key (for error messages).
SETTING_KEYS: dict[str, str] = {
    **{setting: key for key, setting in RELAY_KNOBS.items()},
    "tls": "smarthost_tls",
    "ca_file": "smarthost_ca_file",
    "verify": "smarthost_verify",
    "username": "smarthost_user",
}


class RelayConfig(Protocol):
    """What the relay reads of the ``[smtp]`` section, besides the :data:`RELAY_KNOBS` keys."""

    @property
    def hostname(self) -> str: ...
    @property
    def smarthost(self) -> str: ...
    @property
    def smarthost_tls(self) -> str: ...
    @property
    def smarthost_verify(self) -> bool: ...
    @property
    def smarthost_user(self) -> str: ...
    @property
    def smarthost_password_file(self) -> str: ...
    @property
    def smarthost_ca_file(self) -> str: ...
    @property
    def postmaster(self) -> str: ...


def relay_options(config_class: type[Any]) -> list[list[Any]]:
    """Return ``--queue-lifetime`` ...: an option per :data:`RELAY_KNOBS` key, as in the config.

    ``config_class`` is the section's dataclass: each option takes the
    field's default and help text, and parses its value as the field's type.
    """
    hints = typing.get_type_hints(config_class)
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    return [
        [name.replace("_", "-"), None, fields[name].default, fields[name].metadata["help"],
         _number(name.replace("_", "-"), hints[name])]
        for name in RELAY_KNOBS
    ]  # fmt: skip


def _number(option: str, kind: type[float]) -> Callable[[str], float]:
    """Return a parser of ``--option``'s value as a finite ``kind``, with an error naming it."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            what = "an integer" if kind is int else "a finite number"
            raise ValueError(f"--{option}: expected {what}, got {text!r}")
        return value

    return parse


def host_port(text: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (``[v6]:PORT`` too); raise :class:`ValueError` otherwise."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def settings_of(config: RelayConfig, password: str | None = None) -> RelaySettings:
    """The relay's settings from the ``[smtp]`` section; errors name the settings' fields."""
    return RelaySettings(
        hostname=config.hostname,
        smarthost=host_port(config.smarthost) if config.smarthost else None,
        tls=config.smarthost_tls,
        verify=config.smarthost_verify,
        ca_file=config.smarthost_ca_file or None,
        username=config.smarthost_user or None,
        password=password,
        postmaster=config.postmaster or None,
        **{setting: getattr(config, key) for key, setting in RELAY_KNOBS.items()},
    )


def check_relay_keys(config: RelayConfig) -> None:
    """Check the relay's keys together, as :class:`RelaySettings` does, naming the keys.

    For the section's ``__post_init__``: raises :class:`ValueError` such as
    ``retry_min (600) must not exceed retry_max (60)``.
    """
    try:
        settings_of(config)
    except SettingError as e:
        raise ValueError(e.renamed(SETTING_KEYS)) from None


def _read_secret(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(path, f"cannot read the password file: {e.strerror}") from None


def relay_for(config: RelayConfig, reactor: IServerReactor, spool: Spool) -> Relay:
    """The relay service draining ``spool`` (the master's only)."""
    password = _read_secret(config.smarthost_password_file) if config.smarthost_user else None
    settings = settings_of(config, password)
    if settings.ca_file is not None:
        from netproto_twisted.core.tls import client_options

        # A missing or bad file fails here, not at the first delivery.
        client_options("localhost", ca_file=settings.ca_file)
    relay = Relay(spool, reactor, settings)
    relay.name = "relay"
    return relay
