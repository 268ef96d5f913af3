"""SMTP, POP3 and IMAP in-process on ephemeral loopback ports, over one Maildir store.

For test suites that send mail through SMTP and read it through IMAP or
POP3 (the application's own client, or ours)::

    from twisted.internet import reactor
    from twisted.trial.unittest import TestCase
    from netproto_twisted.imap4 import connect_imap
    from netproto_twisted.smtp import send_mail
    from netproto_twisted.testing import start_mail_servers

    class InboxTests(TestCase):
        async def test_welcome_mail_arrives(self):
            servers = await start_mail_servers(reactor, self.mktemp(), {"alice": "pw"})
            self.addCleanup(servers.stop)
            await send_mail(reactor, "127.0.0.1", servers.smtp_port, "app@example.org",
                            "alice@example.org", b"Subject: welcome\\r\\n\\r\\nhi\\r\\n",
                            tls="none")
            imap = await connect_imap(reactor, "127.0.0.1", servers.imap_port, tls="none",
                                      username="alice", password="pw")
            await imap.select("INBOX")
            self.assertEqual(await imap.search("SUBJECT", "welcome"), [1])
            await imap.logout()

SMTP accepts mail for every user at ``domain`` (no AUTH, no TLS); POP3 and
IMAP allow plaintext logins from loopback.  :meth:`MailServers.add_user`
adds a user while the servers run.  Everything is ready in a few tens of
milliseconds (the password file uses few hash iterations: it is for tests).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from twisted.internet.defer import Deferred, ensureDeferred, gatherResults

from netproto_twisted.core.access import ConnectionGuard, LoginDelay
from netproto_twisted.core.passwords import PasswordFile, thread_runner
from netproto_twisted.core.reactors import IServerReactor
from netproto_twisted.core.sasl_exchange import Authenticator
from netproto_twisted.core.service import EndpointsService
from netproto_twisted.core.streaming import thread_block_runner
from netproto_twisted.imap4.server import IMAPServerFactory, IMAPSettings
from netproto_twisted.mailstore import MaildirStore
from netproto_twisted.pop3 import MaildirMaildrops, POP3ServerFactory, POP3Settings
from netproto_twisted.smtp.delivery import DefaultPolicy, MaildirTarget
from netproto_twisted.smtp.server import SMTPServerFactory

__all__ = ["MailServers", "start_mail_servers"]

_LOOPBACK = "tcp:0:interface=127.0.0.1"
_ITERATIONS = 4096  # the lowest the password file accepts: fast logins in tests


@dataclass
class MailServers:
    """The running servers: their ports, the store and the password file."""

    base: str
    store: MaildirStore
    passwords: PasswordFile
    smtp_port: int
    pop3_port: int
    imap_port: int
    host: str = "127.0.0.1"
    _services: list[EndpointsService] = field(default_factory=list, repr=False)
    _imap: IMAPServerFactory | None = field(default=None, repr=False)

    def add_user(self, name: str, password: str) -> None:
        """Add a user (who can then log in over POP3 and IMAP)."""
        self.passwords.add(name, password)

    def stop(self) -> Deferred[None]:
        """Close the ports and every connection; fires when all is closed."""
        if self._imap is not None:
            self._imap.hub.stop()
        d = gatherResults([s.stopService() for s in self._services])
        return d.addCallback(lambda _: None)


async def _start(
    reactor: IServerReactor, directory: str, users: Mapping[str, str], domain: str
) -> MailServers:
    root = Path(directory).absolute()
    root.mkdir(parents=True, exist_ok=True)
    base = str(root / "mail")
    os.makedirs(base, exist_ok=True)
    pool = reactor.getThreadPool()
    passwords = PasswordFile(root / "users", iterations=_ITERATIONS)
    for name, password in users.items():
        passwords.add(name, password)
    store = MaildirStore(base, reactor, pool, sync="file")
    authenticator = Authenticator.for_password_file(
        passwords,
        thread_runner(reactor, pool),
        LoginDelay(reactor, base=0.05, maximum=0.05),
        allow_insecure=True,
    )
    smtp = SMTPServerFactory(reactor, DefaultPolicy([domain], MaildirTarget(store)))
    pop3 = POP3ServerFactory(
        reactor,
        MaildirMaildrops(base, thread_block_runner(reactor), clock=reactor),
        authenticator,
        POP3Settings(allow_insecure_auth=True),
    )
    imap = IMAPServerFactory(reactor, store, authenticator, IMAPSettings(allow_insecure_auth=True))
    services = [
        EndpointsService(name, reactor, [_LOOPBACK], guard=ConnectionGuard(factory, reactor))
        for name, factory in (("smtp", smtp), ("pop3", pop3), ("imap", imap))
    ]
    ports: list[int] = []
    try:
        for service in services:
            service.startService()
            [(_kind, where)] = await service.when_listening()
            ports.append(int(where.rpartition(":")[2]))
    except BaseException:
        for service in services:
            await service.stopService()
        raise
    smtp_port, pop3_port, imap_port = ports
    return MailServers(
        base, store, passwords, smtp_port, pop3_port, imap_port, _services=services, _imap=imap
    )


def start_mail_servers(
    reactor: IServerReactor,
    directory: str,
    users: Mapping[str, str] | None = None,
    *,
    domain: str = "example.org",
) -> Deferred[MailServers]:
    """Start SMTP, POP3 and IMAP over one Maildir under ``directory``; fire once all listen.

    :param reactor: the reactor (trial's, in tests).
    :param directory: where the Maildir tree and the password file go (``self.mktemp()``).
    :param users: ``{name: password}`` to create now.
    :param domain: the mail domain SMTP delivers locally (``name@domain``).
    """
    return ensureDeferred(_start(reactor, directory, users or {}, domain))
