"""An in-process FTP server for tests: an ephemeral loopback port over a temporary root.

::

    from twisted.internet import reactor
    from twisted.internet.threads import deferToThread
    from twisted.trial.unittest import TestCase
    from netproto_twisted.testing.ftp import start_ftp_server

    class UploadTests(TestCase):
        async def test_upload(self):
            server = await start_ftp_server(reactor, self.mktemp(),
                                            users={"alice": ("secret", "elrw")})
            self.addCleanup(server.stop)
            ...  # connect to server.host, server.port as alice/secret
            self.assertEqual(server.path("alice", "report.csv").read_bytes(), b"...")

Each user's home is ``<root>/<name>``; the permission letters are those of
:mod:`netproto_twisted.ftp.users`.  Plaintext logins are allowed (the server
listens on loopback only); ``tls=True`` adds AUTH TLS and ``PROT P`` with a
self-signed certificate, ``implicit_tls=True`` listens with implicit TLS.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IListeningPort

from netproto_twisted.core.access import LoginDelay
from netproto_twisted.core.limits import DEFAULT_LIMITS
from netproto_twisted.core.passwords import PasswordFile, thread_runner
from netproto_twisted.core.sasl_exchange import Authenticator
from netproto_twisted.core.streaming import thread_block_runner
from netproto_twisted.core.tls import ensure_dev_certificate, server_context
from netproto_twisted.core.tls_sessions import resumable_server_options
from netproto_twisted.ftp.server import FTPServerFactory, FTPSettings
from netproto_twisted.ftp.users import UserTable

__all__ = ["FTPTestServer", "start_ftp_server"]

#: SCRAM iterations of the test password file: fast, since tests log in often.
TEST_ITERATIONS = 4096


@dataclass
class FTPTestServer:
    """A running test server: where it listens, its root, and :meth:`stop`."""

    host: str
    port: int
    root: Path
    factory: FTPServerFactory
    listening: IListeningPort
    cert_path: Path | None = None

    def path(self, user: str, *parts: str) -> Path:
        """A local path inside ``user``'s home."""
        return self.root.joinpath(user, *parts)

    def stop(self) -> Deferred[None]:
        """Stop listening and drop the sessions still open; fires when all are gone."""
        waits: list[Deferred[Any]] = []
        stopped = self.listening.stopListening()
        if isinstance(stopped, Deferred):
            waits.append(stopped)
        factory = self.factory
        if isinstance(factory, _TrackingFactory):
            for protocol in list(factory.live):
                d: Deferred[None] = Deferred()
                factory.waiters.setdefault(protocol, []).append(d)
                waits.append(d)
                protocol.transport.abortConnection()
        return gatherResults(waits).addCallback(lambda _: None)


class _TrackingFactory(FTPServerFactory):
    """Remembers its live sessions, so that :meth:`FTPTestServer.stop` can drop them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.live: set[Any] = set()
        self.waiters: dict[Any, list[Deferred[None]]] = {}

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        if protocol is None:
            return None
        self.live.add(protocol)
        lost = protocol.connectionLost

        def connection_lost(reason: Any = None) -> None:
            try:
                lost(reason) if reason is not None else lost()
            finally:
                del protocol.connectionLost  # this closure holds the protocol: no cycle kept
                self.live.discard(protocol)
                for d in self.waiters.pop(protocol, []):
                    d.callback(None)

        protocol.connectionLost = connection_lost  # type: ignore[method-assign]
        return protocol


def start_ftp_server(
    reactor: Any,
    root: str | os.PathLike[str],
    users: Mapping[str, tuple[str, str]] | None = None,
    *,
    anonymous: bool = False,
    tls: bool = False,
    implicit_tls: bool = False,
    settings: FTPSettings | None = None,
    login_delay: float = 0.0,
) -> Deferred[FTPTestServer]:
    """Start an FTP server on ``127.0.0.1`` port 0 over ``root`` (created).

    :param users: name -> ``(password, permission letters)``.
    :param anonymous: accept ``anonymous`` (read-only, the ``<root>/pub`` tree).
    :param tls: offer AUTH TLS (a self-signed certificate under ``root``'s parent).
    :param implicit_tls: listen with implicit TLS instead.
    :param settings: server settings (plaintext login on loopback is switched on).
    :param login_delay: the failed-login penalty base, seconds (0: none).
    """
    root_path = Path(root).absolute()
    root_path.mkdir(parents=True, exist_ok=True)
    control = root_path.parent / (root_path.name + ".ftp-test")
    control.mkdir(exist_ok=True)
    passwords = PasswordFile(control / "users", iterations=TEST_ITERATIONS)
    entries: dict[str, tuple[str, str]] = {}
    for name, (password, perms) in (users or {}).items():
        passwords.add(name, password)
        entries[name] = (name, perms)
        (root_path / name).mkdir(exist_ok=True)
    table = UserTable(root_path, entries, anonymous_root=root_path / "pub" if anonymous else None)
    if anonymous:
        (root_path / "pub").mkdir(exist_ok=True)
    # Many simultaneous logins from 127.0.0.1 are the point of some tests: queue them all.
    delay = LoginDelay(
        reactor,
        base=max(login_delay, 0.0),
        maximum=DEFAULT_LIMITS.login_delay_max,
        disconnect_after=DEFAULT_LIMITS.max_failed_logins,
        max_waiting=4096,
    )
    authenticator = Authenticator.for_password_file(
        passwords, thread_runner(reactor, reactor.getThreadPool()), delay, allow_insecure=True
    )
    options = None
    cert_path = None
    if tls or implicit_tls:
        cert_path, key_path = ensure_dev_certificate(control)
        options = resumable_server_options(server_context(cert_path, key_path))
    base = settings or FTPSettings()
    factory = _TrackingFactory(
        reactor,
        table,
        authenticator,
        replace(base, allow_insecure_auth=True),
        tls=options,
        runner=thread_block_runner(reactor),
    )
    if implicit_tls:
        listening = reactor.listenSSL(0, factory, options, 1024, interface="127.0.0.1")
    else:
        listening = reactor.listenTCP(0, factory, 1024, interface="127.0.0.1")
    result = FTPTestServer(
        "127.0.0.1", listening.getHost().port, root_path, factory, listening, cert_path
    )
    d: Deferred[FTPTestServer] = Deferred()
    d.callback(result)
    return d
