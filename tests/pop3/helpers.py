"""Shared set-up of the POP3 tests: a Maildir with messages, a password file, a server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.internet.testing import MemoryReactorClock
from zope.interface import implementer

from netproto_twisted.core.access import LoginDelay
from netproto_twisted.core.connection import ConnectionDriver
from netproto_twisted.core.passwords import PasswordFile
from netproto_twisted.core.sasl_exchange import Authenticator
from netproto_twisted.mailstore import MaildirStore
from netproto_twisted.mailstore.fsops import FsOps
from netproto_twisted.pop3 import MaildirMaildrops, POP3Connection, POP3Settings
from tests.mailstore.helpers import sync_runner

USER = "alice"
PASSWORD = "correct horse"

MESSAGES = [
    b"From: bob@example.org\r\nSubject: one\r\n\r\nfirst body\r\n",
    b"From: carol@example.org\r\nSubject: two\r\n\r\n.leading dot\r\nline 2\r\nline 3\r\n",
    b"Subject: three\n\nstored with LF\n.dot\nlast\n",
]


def inline(f: Any) -> Any:
    """A BlockRunner that runs the work at once."""
    return sync_runner(f)


def make_maildir(base: str, messages: list[bytes] = MESSAGES, user: str = USER) -> None:
    """Deliver ``messages`` into ``user``'s INBOX under ``base`` (LF files written as they are)."""
    store = MaildirStore(base, fs=FsOps(), runner=sync_runner, sync="file")
    for body in messages:
        writer = store.deliver(user)
        writer.write(body)
        writer.commit()


def password_file(directory: str) -> PasswordFile:
    """A password file with :data:`USER` / :data:`PASSWORD`."""
    users = PasswordFile(Path(directory) / "users", iterations=4096)
    users.add(USER, PASSWORD)
    users.add("bob", "bob's password")
    return users


def authenticator(
    users: PasswordFile, clock: MemoryReactorClock, *, allow_insecure: bool = True
) -> Authenticator:
    """An Authenticator over ``users`` checking inline, with a login delay on ``clock``."""
    return Authenticator.for_password_file(
        users, sync_runner, LoginDelay(clock), allow_insecure=allow_insecure, hostname="pop.test"
    )


@implementer(IConsumer)
class Collector:
    """A consumer appending what it is given to ``target`` (the driver's output)."""

    def __init__(self) -> None:
        self.target = bytearray()
        self.producer: IPushProducer | None = None

    def registerProducer(self, producer: IPushProducer, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def write(self, data: bytes) -> None:
        self.target += data


def driven(
    base: str,
    users: PasswordFile,
    clock: MemoryReactorClock,
    *,
    loopback: bool = True,
    secure: bool = False,
    tls: object | None = None,
    allow_insecure: bool = True,
    settings: POP3Settings | None = None,
    maildrop_runner: Any = inline,
    shared: Authenticator | None = None,
) -> tuple[POP3Connection, ConnectionDriver]:
    """A POP3Connection over ``base`` driven by bytes; streamed data joins the driver's output."""
    collector = Collector()
    conn = POP3Connection(
        settings or POP3Settings(hostname="pop.test", allow_insecure_auth=allow_insecure),
        MaildirMaildrops(base, maildrop_runner),
        collector,
        inline,
        peer="127.0.0.1" if loopback else "192.0.2.7",
        peer_is_loopback=loopback,
        secure=secure,
        tls=tls,
        authenticator=shared or authenticator(users, clock, allow_insecure=allow_insecure),
    )
    driver = ConnectionDriver(conn)
    collector.target = driver.output
    return conn, driver


def maildir_files(base: str, user: str = USER) -> list[str]:
    """The message files of ``user``'s INBOX (cur and new)."""
    root = os.path.join(base, user)
    return sorted(name for sub in ("cur", "new") for name in os.listdir(os.path.join(root, sub)))


def deliver_by_smtp(base: str, bodies: list[bytes], user: str = USER) -> None:
    """Send ``bodies`` to ``user@example.org`` through our SMTP server, in memory.

    They land in the Maildir++ tree ``base``, written as the SMTP daemon writes it.
    """
    from twisted.internet.testing import MemoryReactorClock

    from netproto_twisted.smtp import send_mail
    from netproto_twisted.smtp.delivery import DefaultPolicy, MaildirTarget
    from netproto_twisted.smtp.server import SMTPServerFactory
    from netproto_twisted.testing import MemoryEndpoint

    clock = MemoryReactorClock()
    store = MaildirStore(base, fs=FsOps(), runner=sync_runner, sync="file")
    policy = DefaultPolicy(["example.org"], MaildirTarget(store))
    endpoint = MemoryEndpoint(SMTPServerFactory(clock, policy), clock)
    for body in bodies:
        d = send_mail(clock, "localhost", 25, "bob@example.net", f"{user}@example.org", body,
                      tls="none", endpoint=endpoint)  # fmt: skip
        if endpoint.result_of(d):
            raise AssertionError(f"SMTP refused the message to {user}")
