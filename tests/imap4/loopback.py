"""An IMAP server on a loopback port of the real reactor, for tests with real peers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.interfaces import IListeningPort

from netproto_twisted.core.access import LoginDelay
from netproto_twisted.core.passwords import PasswordFile, thread_runner
from netproto_twisted.core.sasl_exchange import Authenticator
from netproto_twisted.core.tls import ensure_dev_certificate, server_context
from netproto_twisted.imap4.server import IMAPServerFactory, IMAPSettings
from netproto_twisted.mailstore import MaildirStore
from netproto_twisted.mailstore.fsops import FsOps

reactor: Any = _reactor

USER = "alice"
PASSWORD = "correct horse"


def password_file(directory: str) -> PasswordFile:
    """A password file with alice and bob."""
    users = PasswordFile(Path(directory) / "users", iterations=4096)
    users.add(USER, PASSWORD)
    users.add("bob", "bob's password")
    return users


def deliver(store: MaildirStore, user: str, data: bytes) -> Any:
    """Deliver one message; fire when durable."""
    writer = store.deliver(user)
    writer.write(data)
    return writer.commit()


class LoopbackServer:
    """Our IMAP server on ``127.0.0.1:<port>`` over ``base``, STARTTLS with a dev certificate."""

    def __init__(
        self,
        directory: str,
        base: str,
        users: PasswordFile,
        *,
        allow_insecure: bool = True,
        implicit: bool = False,
        settings: IMAPSettings | None = None,
        delay: float = 0.2,
    ) -> None:
        cert, key = ensure_dev_certificate(Path(directory) / "tls")
        self.cert = cert
        context = server_context(cert, key)
        pool = reactor.getThreadPool()
        self.store = MaildirStore(base, reactor, pool, fs=FsOps(), sync="file")
        authenticator = Authenticator.for_password_file(
            users,
            thread_runner(reactor, pool),
            LoginDelay(reactor, base=delay, maximum=delay),
            allow_insecure=allow_insecure,
        )
        self.factory = IMAPServerFactory(
            reactor,
            self.store,
            authenticator,
            settings or IMAPSettings(hostname="imap.test", allow_insecure_auth=allow_insecure),
            tls=context,
        )
        if implicit:
            self.port: IListeningPort = reactor.listenSSL(
                0, self.factory, context, interface="127.0.0.1"
            )
        else:
            self.port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.number: int = self.port.getHost().port

    def stop(self) -> Any:
        self.factory.hub.stop()
        return self.port.stopListening()


def ensure_dir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path
