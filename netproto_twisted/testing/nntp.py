"""An in-process news server for users' trial suites, with groups and articles set up by the test.

::

    from twisted.internet import reactor
    from twisted.trial.unittest import TestCase
    from netproto_twisted.testing.nntp import start_news_server

    class DigestTests(TestCase):
        async def test_reads_the_group(self):
            news = await start_news_server(reactor, groups={"comp.test": "Testing"})
            self.addCleanup(news.stop)
            await news.add_article("comp.test", subject="hello", body="first post\\n")
            ...  # connect to news.host, news.port with the code under test

The server is ours (:class:`~netproto_twisted.nntp.server.NNTPServerFactory`)
on ``127.0.0.1`` with an ephemeral port and a throwaway store (not fsynced)
in a temporary directory; ``users`` adds logins (AUTHINFO USER/PASS, SASL
PLAIN), ``tls=True`` offers STARTTLS with a development certificate.
"""

from __future__ import annotations

import email.utils
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet import defer

from netproto_twisted.core.access import LoginDelay
from netproto_twisted.core.auth import UserNameRealm
from netproto_twisted.core.ids import message_id as new_message_id
from netproto_twisted.core.reactors import IServerReactor
from netproto_twisted.core.sasl_exchange import Authenticator
from netproto_twisted.core.service import EndpointsService
from netproto_twisted.core.streaming import thread_block_runner
from netproto_twisted.core.tls import ensure_dev_certificate, server_context
from netproto_twisted.nntp.interfaces import Incoming, StoreResult
from netproto_twisted.nntp.server import NNTPServerFactory, NNTPSettings, prepare_transit
from netproto_twisted.nntp.store import NewsDatabase, SQLiteNewsStore

__all__ = ["NewsServer", "start_news_server"]


@dataclass
class NewsServer:
    """A running in-process news server: where it listens, its store, how to add articles."""

    service: EndpointsService
    #: ``(kind, address)`` per port, e.g. ``("tcp", "127.0.0.1:40123")``.
    addresses: list[tuple[str, str]]
    store: SQLiteNewsStore
    directory: str
    reactor: IServerReactor
    #: The name the server puts in Path and Xref.
    path_host: str = "news.test"

    @property
    def host(self) -> str:
        """The listening address."""
        return self.addresses[0][1].rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        """The listening port."""
        return int(self.addresses[0][1].rpartition(":")[2])

    def add_article(
        self,
        groups: str | Sequence[str],
        *,
        subject: str = "test",
        body: str = "test\n",
        sender: str = "Tester <tester@example.test>",
        message_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> defer.Deferred[StoreResult]:
        """Store an article as if a peer fed it; fires with where it was filed."""
        names = [groups] if isinstance(groups, str) else list(groups)
        mid = message_id or new_message_id("example.test")
        lines = [
            "Path: example.test!not-for-mail",
            f"From: {sender}",
            f"Newsgroups: {','.join(names)}",
            f"Subject: {subject}",
            f"Date: {email.utils.formatdate(self.reactor.seconds(), usegmt=True)}",
            f"Message-ID: {mid}",
            *(f"{k}: {v}" for k, v in (headers or {}).items()),
        ]
        text = "\r\n".join(lines) + "\r\n\r\n" + body.replace("\r\n", "\n").replace("\n", "\r\n")
        prepared = prepare_transit(text.encode(), offered_id=mid, path_host=self.path_host)
        return self.store.store(
            Incoming(
                mid, prepared.data, prepared.groups, prepared.overview, self.reactor.seconds()
            )
        )

    async def _stop(self) -> None:
        try:
            await defer.maybeDeferred(self.service.stopService)
        finally:
            await self.store.close()
            shutil.rmtree(self.directory, ignore_errors=True)

    def stop(self) -> defer.Deferred[None]:
        """Stop listening, close the connections and the store, remove the directory."""
        return defer.ensureDeferred(self._stop())


async def _start(
    reactor: IServerReactor,
    groups: Mapping[str, str] | Sequence[str],
    users: Mapping[str, str] | None,
    posting_requires_auth: bool,
    tls: bool,
    listen: str,
    settings: Mapping[str, Any],
) -> NewsServer:
    directory = tempfile.mkdtemp(prefix="netproto-news-")
    path = f"{directory}/news.db"
    db = NewsDatabase(path, durable=False)
    try:
        items = groups.items() if isinstance(groups, Mapping) else [(g, "") for g in groups]
        for name, description in items:
            db.add_group(name, description=description)
    finally:
        db.close()
    store = SQLiteNewsStore(reactor, path, path_host="news.test", durable=False)
    authenticator = None
    if users:
        checker = InMemoryUsernamePasswordDatabaseDontUse(
            **{name: password.encode() for name, password in users.items()}
        )
        authenticator = Authenticator(
            Portal(UserNameRealm(), [checker]),
            LoginDelay(reactor, base=0.0, maximum=0.0),
            mechanisms=["PLAIN"],
            allow_insecure=True,
        )
    context = None
    if tls:
        cert, key = ensure_dev_certificate(directory)
        context = server_context(cert, key)
    options: dict[str, Any] = {
        "hostname": "news.test",
        "path_host": "news.test",
        "domain": "news.test",
        "posting_requires_auth": posting_requires_auth,
        "allow_insecure_auth": True,
        **settings,
    }
    factory = NNTPServerFactory(
        reactor,
        store,
        authenticator,
        NNTPSettings(**options),
        tls=context,
        runner=thread_block_runner(reactor),
    )
    service = EndpointsService("nntp-test", reactor, [listen], factory)
    try:
        service.startService()
        addresses = await service.when_listening()
    except BaseException:
        await defer.maybeDeferred(service.stopService)
        await store.close()
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return NewsServer(service, addresses, store, directory, reactor)


def start_news_server(
    reactor: IServerReactor,
    *,
    groups: Mapping[str, str] | Sequence[str] = (),
    users: Mapping[str, str] | None = None,
    posting_requires_auth: bool = False,
    tls: bool = False,
    listen: str = "tcp:0:interface=127.0.0.1",
    **settings: Any,
) -> defer.Deferred[NewsServer]:
    """Start our news server in-process; fire with a :class:`NewsServer` once it listens.

    :param groups: the groups to create (a mapping gives their descriptions).
    :param users: ``{name: password}`` who may log in (none: AUTHINFO is refused).
    :param posting_requires_auth: POST needs a login (off by default here).
    :param tls: offer STARTTLS with a development certificate.
    :param listen: the endpoint string (default: IPv4 loopback, any free port).
    :param settings: further :class:`~netproto_twisted.nntp.server.NNTPSettings` fields.
    """
    return defer.ensureDeferred(
        _start(reactor, groups, users, posting_requires_auth, tls, listen, settings)
    )
