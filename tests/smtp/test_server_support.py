"""Helpers for the SMTP server tests: a server on a StringTransport with capture targets."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.cred.portal import Portal
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from netproto_twisted.core.passwords import PasswordFile, synchronous_runner
from netproto_twisted.smtp.delivery import CaptureTarget, DefaultPolicy
from netproto_twisted.smtp.interfaces import IRecipientPolicy
from netproto_twisted.smtp.server import (
    ServerSettings,
    SMTPServerFactory,
    SMTPServerProtocol,
    password_portal,
)

__all__ = ["Harness", "TLSStringTransport", "make_portal", "plain_auth"]

USERS = {"alice", "bob", "postmaster"}


class TLSStringTransport(StringTransport):
    """A StringTransport that records ``startTLS`` (the bytes after it are 'encrypted')."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tls_started: list[tuple[object, bool]] = []
        self.tls_offset: int | None = None

    def startTLS(self, context: object, normal: bool = True) -> None:
        self.tls_started.append((context, normal))
        self.tls_offset = len(self.value())


def make_portal(directory: Path) -> tuple[Portal, PasswordFile]:
    """A portal with users alice/bob (password ``secret-pw``), checked synchronously."""
    pf = PasswordFile(directory / "users", iterations=4096)
    pf.add("alice", "secret-pw", cram_md5=True)
    pf.add("bob", "secret-pw")
    return password_portal(pf, synchronous_runner), pf


def plain_auth(user: str, password: str) -> str:
    """The base64 PLAIN initial response."""
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


class Harness:
    """One server connection on a StringTransport; :meth:`send` returns the new reply lines."""

    def __init__(
        self,
        settings: ServerSettings | None = None,
        *,
        policy: IRecipientPolicy | None = None,
        peer: str = "192.0.2.10",
        tls: object | None = None,
        portal: Portal | None = None,
        scram_store: Any = None,
        relay_networks: tuple[Any, ...] | None = None,
        user_exists: Callable[[str], bool] | None = USERS.__contains__,
        factory: SMTPServerFactory | None = None,
    ) -> None:
        self.clock = MemoryReactorClock()
        self.local = CaptureTarget()
        self.relay = CaptureTarget()
        self.policy = policy or DefaultPolicy(
            ["example.org"], self.local, self.relay, user_exists=user_exists
        )
        if settings is None:
            settings = ServerSettings(hostname="mx.example.org")
        if relay_networks is not None:
            from dataclasses import replace

            settings = replace(settings, relay_networks=relay_networks)
        self.factory = factory or SMTPServerFactory(
            self.clock, self.policy, settings, tls=tls, portal=portal, scram_store=scram_store
        )
        address: IPv4Address | IPv6Address
        if ":" in peer:
            address = IPv6Address("TCP", peer, 40000)
        else:
            address = IPv4Address("TCP", peer, 40000)
        proto = self.factory.buildProtocol(address)
        assert isinstance(proto, SMTPServerProtocol)
        self.proto = proto
        self.transport = TLSStringTransport(peerAddress=address)
        self._seen = 0
        proto.makeConnection(self.transport)

    def output(self) -> list[str]:
        """The reply lines written since the last call."""
        data = self.transport.value()
        new, self._seen = data[self._seen :], len(data)
        return [line for line in new.decode("utf-8").split("\r\n") if line]

    def send(self, data: bytes | str) -> list[str]:
        """Feed ``data`` to the server; return the reply lines it wrote."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.proto.dataReceived(data)
        return self.output()

    def ehlo(self, name: str = "client.example") -> list[str]:
        """Consume the greeting and send EHLO."""
        self.output()
        return self.send(f"EHLO {name}\r\n")

    @property
    def closed(self) -> bool:
        """Whether the server asked to close the connection."""
        return bool(self.transport.disconnecting)
