"""The combined daemon: ``twistd -n netproto [--config FILE] [--data DIR]``.

With no configuration file every service that exists runs on loopback high
ports with its data in ``./netproto-data/``.  A TOML file configures any
subset: the global tables ``[netproto]``, ``[tls]``, ``[access]`` and
``[limits]``, and one table per protocol (``[socket]``, ...), each declared by
that protocol's ``tap.py`` as a ``Config`` dataclass with a
``combined_service(config, context)`` function.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast

from twisted.application.service import IService, MultiService
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python import usage

from netproto_twisted import __version__
from netproto_twisted.core.access import AccessPolicy
from netproto_twisted.core.config import load_config
from netproto_twisted.core.daemon import DaemonContext, TLSFiles, listening_services
from netproto_twisted.core.errors import ConfigError, NetprotoError
from netproto_twisted.core.limits import Limits
from netproto_twisted.core.reactors import IServerReactor
from netproto_twisted.core.service import exit_on_failure, fail

__all__ = [
    "COMPONENTS",
    "AccessConfig",
    "NetprotoConfig",
    "NetprotoService",
    "Options",
    "TLSConfig",
    "makeService",
]

_log = Logger()
NAME = "netproto"

#: Protocol sections of the combined daemon: TOML table -> module with ``Config``
#: and ``combined_service(config, context)``.  Each protocol adds its line.
COMPONENTS: dict[str, str] = {
    "socket": "netproto_twisted.sockserv.tap",
    "smtp": "netproto_twisted.smtp.tap",
    "pop3": "netproto_twisted.pop3.tap",
    "xmlrpc": "netproto_twisted.xmlrpc.tap",
    "nntp": "netproto_twisted.nntp.tap",
    "http": "netproto_twisted.http.tap",
    "ftp": "netproto_twisted.ftp.tap",
    "telnet": "netproto_twisted.telnet.tap",
    "imap": "netproto_twisted.imap4.tap",
}


@dataclass(frozen=True)
class NetprotoConfig:
    """``[netproto]``: settings of the daemon itself."""

    data: str = field(default="netproto-data", metadata={"help": "data directory (--data wins)"})


@dataclass(frozen=True)
class TLSConfig:
    """``[tls]``: the server certificate; empty means a generated development certificate."""

    cert: str = field(default="", metadata={"help": "PEM certificate (chain) file"})
    key: str = field(default="", metadata={"help": "PEM private key file"})


@dataclass(frozen=True)
class AccessConfig:
    """``[access]``: networks allowed and denied for every service (deny wins)."""

    allow: list[str] = field(default_factory=list, metadata={"help": "networks allowed"})
    deny: list[str] = field(default_factory=list, metadata={"help": "networks denied"})


def _sections() -> dict[str, type]:
    sections: dict[str, type] = {
        "netproto": NetprotoConfig,
        "tls": TLSConfig,
        "access": AccessConfig,
        "limits": Limits,
    }
    for table, module in COMPONENTS.items():
        sections[table] = importlib.import_module(module).Config
    return sections


class Options(usage.Options):
    """Options of ``twistd netproto``."""

    synopsis = "[--config FILE] [--data DIR]"
    longdesc = (
        "Run every netproto service at once. Without --config, each runs on loopback "
        "high ports with embedded defaults and data in ./netproto-data/."
    )
    optParameters: ClassVar[list[list[Any]]] = [
        ["config", "c", None, "TOML configuration file"],
        ["data", "d", None, "data directory [default: ./netproto-data, or [netproto] data]"],
    ]


class NetprotoService(MultiService):
    """The root service: starts the protocols and prints one table of what listens where."""

    def __init__(self, context: DaemonContext) -> None:
        MultiService.__init__(self)
        self.context = context
        self.ready: defer.Deferred[list[tuple[str, str, str]]] | None = None

    def startService(self) -> None:
        """Start every protocol service, then report the listening table."""
        MultiService.startService(self)
        self.ready = defer.ensureDeferred(self._report())
        exit_on_failure(self.context.reactor, self.ready, NAME)

    async def _report(self) -> list[tuple[str, str, str]]:
        rows: list[tuple[str, str, str]] = []
        for svc in listening_services(self):
            for kind, where in await svc.when_listening():
                rows.append((svc.name or "?", kind, where))
        _log.info("{table}", table=startup_table(self.context, rows))
        return rows


def startup_table(context: DaemonContext, rows: list[tuple[str, str, str]]) -> str:
    """Render the start-up report: version, data directory, listeners, TLS fingerprint."""
    width = max([len("SERVICE")] + [len(r[0]) for r in rows])
    lines = [f"netproto {__version__} is up; data in {context.data_dir}"]
    lines.append(f"  {'SERVICE'.ljust(width)}  KIND  ADDRESS")
    lines += [f"  {name.ljust(width)}  {kind.ljust(4)}  {where}" for name, kind, where in rows]
    origin = "development certificate, self-signed" if context.tls.development else "certificate"
    lines.append(f"  TLS: {origin} {context.tls.cert}")
    lines.append(f"  TLS fingerprint: {context.tls.fingerprint()}")
    return "\n".join(lines)


def build(options: dict[str, Any], reactor: IServerReactor) -> NetprotoService:
    """Build the combined service from parsed options (raises :class:`NetprotoError`)."""
    sections = _sections()
    path = options.get("config")
    config = load_config(Path(path), sections) if path else {k: v() for k, v in sections.items()}
    netproto: NetprotoConfig = config["netproto"]  # type: ignore[assignment]
    tls: TLSConfig = config["tls"]  # type: ignore[assignment]
    access: AccessConfig = config["access"]  # type: ignore[assignment]
    data_dir = Path(options.get("data") or netproto.data).resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError("netproto.data", f"cannot create {data_dir}: {exc.strerror}") from None
    context = DaemonContext(
        reactor=reactor,
        data_dir=data_dir,
        tls=TLSFiles.resolve(data_dir, tls.cert, tls.key),
        policy=AccessPolicy(access.allow, access.deny),
        limits=config["limits"],  # type: ignore[arg-type]
    )
    context.server_tls()  # a bad certificate fails now, in one line
    root = NetprotoService(context)
    for table, module in COMPONENTS.items():
        service: IService | None = importlib.import_module(module).combined_service(
            config[table], context
        )
        if service is not None:
            service.setServiceParent(root)
    return root


def makeService(options: Options) -> NetprotoService:
    """twistd entry point: build the combined service or exit with one clear line."""
    from twisted.internet import reactor

    try:
        return build(dict(options), cast(IServerReactor, reactor))
    except NetprotoError as exc:
        fail(NAME, exc)
