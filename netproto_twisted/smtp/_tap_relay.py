"""The relay's side of ``twistd netproto-smtp``: its options and building the relay service.

Split from :mod:`netproto_twisted.smtp.tap`, which owns :class:`Config`:
:data:`RELAY_KNOBS` names the relay's numeric ``[smtp]`` keys, each also a
``--the-key VALUE`` option (:func:`relay_options`), and :func:`relay_for`
builds the :class:`~netproto_twisted.smtp.relay.Relay` from a config.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.reactors import IServerReactor
from netproto_twisted.smtp.queue import Spool
from netproto_twisted.smtp.relay import Relay

if TYPE_CHECKING:
    from netproto_twisted.smtp.tap import Config

__all__ = ["RELAY_KNOBS", "host_port", "relay_for", "relay_options"]

#: The relay's numeric keys: each is also ``--the-key VALUE`` (see :func:`relay_options`).
RELAY_KNOBS = (
    "queue_lifetime", "retry_min", "retry_max", "retry_jitter", "delay_warning",
    "per_destination", "relay_connections", "relay_port", "relay_timeout",
    "relay_idle_timeout", "relay_stop_grace", "dead_host_time", "max_dead_host_time",
    "max_active_entries", "queue_poll_interval",
)  # fmt: skip


def relay_options(config_class: type[Config]) -> list[list[Any]]:
    """Return ``--queue-lifetime`` ...: an option per :data:`RELAY_KNOBS` key, as in the config."""
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


def _read_secret(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(path, f"cannot read the password file: {e.strerror}") from None


def relay_for(config: Config, reactor: IServerReactor, spool: Spool) -> Relay:
    """The relay service draining ``spool`` (the master's only)."""
    smarthost = host_port(config.smarthost) if config.smarthost else None
    password = _read_secret(config.smarthost_password_file) if config.smarthost_user else None
    ca_file = config.smarthost_ca_file or None
    if ca_file is not None:
        from netproto_twisted.core.tls import client_options

        client_options("localhost", ca_file=ca_file)  # a missing or bad file fails here, not later
    relay = Relay(
        spool,
        reactor,
        hostname=config.hostname,
        smarthost=smarthost,
        tls=config.smarthost_tls,
        verify=config.smarthost_verify,
        ca_file=ca_file,
        username=config.smarthost_user or None,
        password=password,
        postmaster=config.postmaster or None,
        lifetime=config.queue_lifetime,
        min_backoff=config.retry_min,
        max_backoff=config.retry_max,
        jitter=config.retry_jitter,
        delay_warning=config.delay_warning,
        per_destination=config.per_destination,
        max_connections=config.relay_connections,
        port=config.relay_port,
        timeout=config.relay_timeout,
        idle_timeout=config.relay_idle_timeout,
        stop_grace=config.relay_stop_grace,
        dead_host_time=config.dead_host_time,
        max_dead_host_time=config.max_dead_host_time,
        max_active_entries=config.max_active_entries,
        poll_interval=config.queue_poll_interval,
    )
    relay.name = "relay"
    return relay
