"""NNTP session and feed replies driven with bytes: modes, refusals, bad lines, TAKETHIS errors."""

from __future__ import annotations

import base64
import os
from typing import Any

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet import reactor

from netproto_twisted.core.access import LoginDelay
from netproto_twisted.core.auth import UserNameRealm
from netproto_twisted.core.connection import ConnectionDriver
from netproto_twisted.core.sasl_exchange import Authenticator
from netproto_twisted.nntp.store import NewsDatabase, SQLiteNewsStore
from tests.nntp.test_reader import NNTPSessionCase
from tests.nntp.test_server import fed, post


class SessionReplyTests(NNTPSessionCase):
    async def test_no_posting_server(self) -> None:
        d = self.session(allow_posting=False)
        self.assertEqual(await self.talk(d, b"MODE READER\r\n"), ["201 reader mode, no posting"])
        self.assertEqual(await self.talk(d, b"POST\r\n"), ["440 posting not permitted"])
        lines = await self.talk(d, b"CAPABILITIES\r\n")
        self.assertEqual(lines[0][:3], "101")
        self.assertNotIn("POST", lines)
        self.assertIn("IHAVE", lines)

    async def test_modes_help_and_quit(self) -> None:
        d = self.session()
        self.assertEqual(
            await self.talk(d, b"MODE READER\r\n"), ["200 reader mode, posting allowed"]
        )
        self.assertEqual(await self.talk(d, b"MODE STREAM\r\n"), ["203 streaming permitted"])
        self.assertEqual([x[:3] for x in await self.talk(d, b"MODE FROB\r\n")], ["501"])
        lines = await self.talk(d, b"HELP\r\n")
        self.assertEqual(lines[0][:3], "100")
        self.assertEqual(lines[-1], ".")
        self.assertTrue(any("ARTICLE" in x for x in lines[1:-1]), lines)
        self.assertEqual(await self.talk(d, b"QUIT\r\n"), ["205 bye"])
        self.assertEqual(await self.talk(d, b"DATE\r\n"), [])

    async def test_capabilities_without_logins(self) -> None:
        d = self.session(implementation="netproto-test")
        lines = await self.talk(d, b"CAPABILITIES\r\n")
        self.assertIn("IMPLEMENTATION netproto-test", lines)
        self.assertIn("POST", lines)
        self.assertFalse([x for x in lines if x.startswith(("AUTHINFO", "STARTTLS", "SASL"))])
        self.assertEqual(
            await self.talk(d, b"AUTHINFO USER a\r\n"), ["502 no logins on this server"]
        )

    async def test_bad_lines(self) -> None:
        d = self.session()
        self.assertEqual([x[:3] for x in await self.talk(d, b"GROUP comp.test\rx\r\n")], ["500"])
        lines = await self.talk(d, b"X" * 5000 + b"\r\nDATE\r\n")
        self.assertEqual([x[:3] for x in lines], ["501", "111"])

    async def test_timeout_closes(self) -> None:
        d = self.session()
        d.connection.timeout()
        out = d.take_output() + d.connection.data_to_send() + self.transport.value()
        self.assertEqual(out, b"400 idle for too long, closing\r\n")

    async def test_feed_refusals(self) -> None:
        d = self.session(feed_peer=False)
        self.assertEqual(
            await self.talk(d, b"IHAVE <1@peer>\r\n"), ["502 transfer permission denied"]
        )
        self.assertEqual([x[:3] for x in await self.talk(d, b"CHECK <1@peer>\r\n")], ["502"])
        lines = await self.talk(d, b"TAKETHIS <1@peer>\r\n" + fed("<1@peer>") + b".\r\n")
        self.assertEqual(lines, ["439 <1@peer> transfer permission denied"])
        self.assertEqual(await self.talk(d, b"ARTICLE <1@peer>\r\n"), ["430 no such article"])

    async def test_bad_ids_and_articles(self) -> None:
        d = self.session()
        self.assertEqual([x[:3] for x in await self.talk(d, b"IHAVE junk\r\n")], ["501"])
        self.assertEqual(await self.talk(d, b"CHECK junk\r\n"), ["438 junk bad Message-ID"])
        lines = await self.talk(d, b"TAKETHIS junk\r\n" + fed("<j@peer>") + b".\r\n")
        self.assertEqual(lines, ["439 junk bad Message-ID"])
        lines = await self.talk(d, b"IHAVE <2@peer>\r\n" + fed("<3@peer>") + b".\r\n")
        self.assertEqual(lines[0][:3], "335")
        self.assertEqual(lines[1][:3], "437", lines)
        nogroup = fed("<4@peer>").replace(b"comp.test", b"alt.none")
        lines = await self.talk(d, b"IHAVE <4@peer>\r\n" + nogroup + b".\r\n")
        self.assertEqual(lines[1], "437 no wanted newsgroup")
        nogroup = fed("<5@peer>").replace(b"comp.test", b"alt.none")
        lines = await self.talk(d, b"TAKETHIS <5@peer>\r\n" + nogroup + b".\r\n")
        self.assertEqual(lines, ["439 <5@peer> no wanted newsgroup"])
        await self.talk(d, b"TAKETHIS <6@peer>\r\n" + fed("<6@peer>") + b".\r\n")
        lines = await self.talk(d, b"TAKETHIS <6@peer>\r\n" + fed("<6@peer>") + b".\r\n")
        self.assertEqual(lines, ["439 <6@peer> duplicate"])

    async def test_post_duplicate_and_unknown_group(self) -> None:
        d = self.session()
        article = post(b"Message-ID: <p@us.test>\r\n")
        lines = await self.talk(d, b"POST\r\n" + article + b".\r\nPOST\r\n" + article + b".\r\n")
        self.assertEqual([x[:3] for x in lines], ["340", "240", "340", "441"])
        self.assertIn("duplicate", lines[3])


class AuthinfoTests(NNTPSessionCase):
    def login_session(self, **settings: Any) -> ConnectionDriver:
        checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")
        authenticator = Authenticator(
            Portal(UserNameRealm(), [checker]),
            LoginDelay(reactor, base=0.0, maximum=0.0),
            mechanisms=["PLAIN"],
            allow_insecure=True,
        )
        return self.session(
            feed_peer=False,
            connection={"authenticator": authenticator, "peer_is_loopback": True},
            **{"allow_insecure_auth": True, **settings},
        )

    async def test_user_pass(self) -> None:
        d = self.login_session()
        lines = await self.talk(d, b"CAPABILITIES\r\n")
        self.assertIn("AUTHINFO USER SASL", lines)
        self.assertIn("SASL PLAIN", lines)
        self.assertEqual(
            await self.talk(d, b"IHAVE <1@peer>\r\n"),
            ["480 transfer permission denied, authenticate first"],
        )
        codes = [x[:3] for x in await self.talk(d, b"AUTHINFO PASS x\r\nAUTHINFO USER\r\n")]
        self.assertEqual(codes, ["482", "501"])
        self.assertEqual([x[:3] for x in await self.talk(d, b"AUTHINFO FROB\r\n")], ["501"])
        self.assertEqual([x[:3] for x in await self.talk(d, b"AUTHINFO SASL\r\n")], ["501"])
        lines = await self.talk(d, b"AUTHINFO USER alice\r\nAUTHINFO PASS wrong\r\n")
        self.assertEqual([x[:3] for x in lines], ["381", "481"])
        lines = await self.talk(d, b"AUTHINFO USER alice\r\nAUTHINFO PASS secret\r\n")
        self.assertEqual([x[:3] for x in lines], ["381", "281"])
        lines = await self.talk(d, b"CAPABILITIES\r\n")
        self.assertFalse([x for x in lines if x.startswith("AUTHINFO")], lines)
        lines = await self.talk(d, b"IHAVE <1@peer>\r\n" + fed("<1@peer>") + b".\r\n")
        self.assertEqual([x[:3] for x in lines], ["335", "235"])

    async def test_plaintext_refused_without_tls(self) -> None:
        d = self.login_session(allow_insecure_auth=False)
        lines = await self.talk(d, b"AUTHINFO USER alice\r\n")
        self.assertEqual(lines, ["483 encryption required (STARTTLS)"])

    async def test_sasl_plain(self) -> None:
        d = self.login_session()
        token = base64.b64encode(b"\0alice\0secret")
        lines = await self.talk(d, b"AUTHINFO SASL PLAIN " + token + b"\r\n")
        self.assertEqual([x[:3] for x in lines], ["281"])
        d = self.login_session()
        lines = await self.talk(d, b"AUTHINFO SASL PLAIN\r\n")
        self.assertEqual(lines[0][:3], "383")
        lines = await self.talk(d, base64.b64encode(b"\0alice\0bad") + b"\r\n")
        self.assertEqual([x[:3] for x in lines], ["481"])
        lines = await self.talk(d, b"AUTHINFO SASL NOPE\r\n")
        self.assertEqual([x[:3] for x in lines], ["503"])

    async def test_sasl_exchange_interrupted_by_a_long_line(self) -> None:
        d = self.login_session()
        self.assertEqual((await self.talk(d, b"AUTHINFO SASL PLAIN\r\n"))[0][:3], "383")
        lines = await self.talk(d, b"A" * 5000 + b"\r\n")
        self.assertEqual([x[:3] for x in lines], ["501"])
        # The exchange is over: the next line is a command again.
        self.assertEqual([x[:3] for x in await self.talk(d, b"DATE\r\n")], ["111"])


class PipelineTests(NNTPSessionCase):
    async def test_quit_waits_for_pending_replies(self) -> None:
        d = self.session()
        lines = await self.talk(d, b"GROUP comp.test\r\nQUIT\r\n")
        self.assertEqual(lines, ["211 0 1 0 comp.test", "205 bye"])

    async def test_unparsable_lines(self) -> None:
        d = self.session()
        for line in (b"\r\n", b"\xff\xfe\r\n"):
            self.assertEqual([x[:3] for x in await self.talk(d, line)], ["500"], line)
        self.assertEqual([x[:3] for x in await self.talk(d, b"DATE\r\n")], ["111"])


class GroupStatusTests(NNTPSessionCase):
    def setUp(self) -> None:
        path = os.path.join(self.mktemp(), "news.db")
        db = NewsDatabase(path, durable=False)
        db.add_group("comp.test")
        db.add_group("comp.closed", status="n")
        db.close()
        self.store = SQLiteNewsStore(reactor, path, path_host="us.test", durable=False)
        self.addCleanup(self.store.close)

    async def test_posting_to_a_closed_group_and_unknown_groups(self) -> None:
        d = self.session()
        closed = post().replace(b"comp.test", b"comp.closed")
        lines = await self.talk(d, b"POST\r\n" + closed + b".\r\n")
        self.assertEqual(lines[1], "441 posting to comp.closed not allowed")
        # Unknown groups among known ones are skipped; the article lands in the known one.
        mixed = post().replace(b"comp.test", b"no.such,comp.test")
        lines = await self.talk(d, b"POST\r\n" + mixed + b".\r\n")
        self.assertEqual(lines[1][:3], "240", lines)
        self.assertEqual(await self.talk(d, b"GROUP comp.test\r\n"), ["211 1 1 1 comp.test"])
