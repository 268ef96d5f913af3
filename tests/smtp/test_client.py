"""Unit tests of the SMTP client against scripted servers (iosim, StringTransport)."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import base64
import hashlib
import hmac
import io
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IConsumer
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.errors import (
    LocalProtocolError,
    PermanentError,
    RemoteProtocolError,
    TemporaryError,
)
from netproto_twisted.smtp.client import SMTPClient, connect_smtp
from netproto_twisted.smtp.client.protocol import SMTPClientProtocol
from netproto_twisted.smtp.errors import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPDataError,
    SMTPNotSupportedError,
    SMTPRecipientsRefused,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTLSRequired,
)
from tests.smtp.test_client_helpers import DEFAULT_EXTENSIONS, IOEndpoint, ScriptedServer

MESSAGE = b"Subject: hi\r\n\r\nhello\r\n"


class _Base(SynchronousTestCase):
    def connect(
        self, server: ScriptedServer | None = None, host: str = "127.0.0.1", **kwargs: Any
    ) -> tuple[SMTPClient, ScriptedServer, IOEndpoint]:
        server = server or ScriptedServer()
        clock = MemoryReactorClock()
        self.clock = clock
        endpoint = IOEndpoint(server, clock)
        kwargs.setdefault("tls", "none")
        d = connect_smtp(clock, host, endpoint=endpoint, **kwargs)
        endpoint.flush()
        client = self.successResultOf(d)
        self.endpoint = endpoint
        return client, server, endpoint

    def send(self, client: SMTPClient, *args: Any, **kwargs: Any) -> Deferred[Any]:
        d = client.send_message(*args, **kwargs)
        self.endpoint.flush()
        return d


class ConnectTests(_Base):
    def test_greeting_and_ehlo(self) -> None:
        client, server, _ = self.connect(helo="client.example")
        self.assertEqual(server.commands, ["EHLO client.example"])
        self.assertTrue(client.extensions.has("PIPELINING"))
        self.assertEqual(client.extensions.max_size, 1000000)
        self.assertFalse(client.is_secure)
        self.assertEqual(client.peer_host, "127.0.0.1")

    def test_default_helo_name_is_an_address_literal_or_localhost(self) -> None:
        _, server, _ = self.connect()
        self.assertEqual(server.commands, ["EHLO localhost"])

    def test_greeting_refused(self) -> None:
        server = ScriptedServer(greeting=b"554 5.3.2 go away\r\n")
        clock = MemoryReactorClock()
        endpoint = IOEndpoint(server, clock)
        d = connect_smtp(clock, "127.0.0.1", endpoint=endpoint, tls="none")
        endpoint.flush()
        error = self.failureResultOf(d, SMTPConnectError).value
        self.assertEqual((error.code, error.text), (554, "5.3.2 go away"))
        self.assertIsInstance(error, PermanentError)
        self.assertTrue(endpoint.client.transport.disconnecting)

    def test_helo_fallback(self) -> None:
        server = ScriptedServer(replies={"EHLO": b"502 5.5.1 no ESMTP\r\n"})
        client, server, _ = self.connect(server)
        self.assertEqual(server.commands, ["EHLO localhost", "HELO localhost"])
        self.assertFalse(client.esmtp)
        self.assertEqual(dict(client.extensions.keywords), {})

    def test_starttls_required_but_not_offered(self) -> None:
        server = ScriptedServer()
        clock = MemoryReactorClock()
        endpoint = IOEndpoint(server, clock)
        d = connect_smtp(clock, "127.0.0.1", endpoint=endpoint, tls="starttls")
        endpoint.flush()
        error = self.failureResultOf(d, SMTPTLSRequired).value
        self.assertTrue(error.temporary)
        self.assertNotIn("STARTTLS", server.commands)

    def test_opportunistic_without_starttls_stays_plain(self) -> None:
        client, server, _ = self.connect(tls="opportunistic")
        self.assertFalse(client.is_secure)
        self.assertEqual(server.commands, ["EHLO localhost"])

    def test_starttls_refused(self) -> None:
        server = ScriptedServer(
            extensions=[*DEFAULT_EXTENSIONS, "STARTTLS"],
            replies={"STARTTLS": b"454 4.7.0 TLS not available\r\n"},
        )
        clock = MemoryReactorClock()
        endpoint = IOEndpoint(server, clock)
        d = connect_smtp(clock, "127.0.0.1", endpoint=endpoint, tls="starttls")
        endpoint.flush()
        error = self.failureResultOf(d, SMTPTLSRequired).value
        self.assertIn("454", error.text)

    def test_bad_arguments_refused_before_connecting(self) -> None:
        clock = MemoryReactorClock()
        with self.assertRaises(LocalProtocolError):
            connect_smtp(clock, "127.0.0.1", helo="bad\r\nname", tls="none")
        with self.assertRaises(LocalProtocolError):
            connect_smtp(clock, "127.0.0.1", username="u\r\n", password="p", tls="none")
        with self.assertRaises(LocalProtocolError):
            connect_smtp(clock, "127.0.0.1", username="u", password="p\x00", tls="none")
        self.assertEqual(clock.tcpClients, [])
        with self.assertRaises(ValueError):
            connect_smtp(clock, "127.0.0.1", tls="sometimes")  # type: ignore[arg-type]

    def test_uses_hostname_endpoint_on_the_given_reactor(self) -> None:
        clock = MemoryReactorClock()
        connect_smtp(clock, "127.0.0.1", 2525, tls="none")
        self.assertEqual(len(clock.tcpClients), 1)
        host, port, *_ = clock.tcpClients[0]
        self.assertEqual((host, port), ("127.0.0.1", 2525))

    def test_quit(self) -> None:
        client, server, endpoint = self.connect()
        d = client.quit()
        endpoint.flush()
        reply = self.successResultOf(d)
        assert reply is not None
        self.assertEqual(reply.code, 221)
        self.assertEqual(server.commands[-1], "QUIT")
        self.assertFalse(client.connected)
        self.successResultOf(client.when_closed())


class SendTests(_Base):
    def test_pipelined_envelope_in_one_write(self) -> None:
        client, server, _ = self.connect()
        d = self.send(client, "a@example.org", ["b@example.org", "c@example.org"], MESSAGE)
        result = self.successResultOf(d)
        self.assertEqual(sorted(result.accepted), ["b@example.org", "c@example.org"])
        self.assertEqual(result.refused, {})
        assert result.data_reply is not None
        self.assertEqual(result.data_reply.code, 250)
        self.assertIn(
            b"MAIL FROM:<a@example.org> SIZE=%d\r\nRCPT TO:<b@example.org>\r\n"
            b"RCPT TO:<c@example.org>\r\nDATA\r\n" % len(MESSAGE),
            server.reads,
        )
        self.assertEqual(server.messages, [MESSAGE])

    def test_without_pipelining_one_command_per_write(self) -> None:
        server = ScriptedServer(extensions=["8BITMIME"])
        client, server, _ = self.connect(server)
        self.successResultOf(self.send(client, "a@example.org", ["b@example.org"], MESSAGE))
        self.assertIn(b"MAIL FROM:<a@example.org>\r\n", server.reads)
        self.assertIn(b"RCPT TO:<b@example.org>\r\n", server.reads)
        self.assertIn(b"DATA\r\n", server.reads)
        self.assertEqual(server.messages, [MESSAGE])

    def test_dot_stuffing_and_line_endings(self) -> None:
        client, server, _ = self.connect()
        raw = b".starts with a dot\n..two\r\nbare cr\rend"
        self.successResultOf(self.send(client, "a@example.org", ["b@example.org"], raw))
        self.assertEqual(server.messages, [b".starts with a dot\r\n..two\r\nbare cr\r\nend\r\n"])

    def test_8bit_body_gets_body_8bitmime(self) -> None:
        client, server, _ = self.connect()
        body = "Subject: caf\u00e9\r\n\r\n\u00e9\r\n".encode()
        self.successResultOf(self.send(client, "a@example.org", ["b@example.org"], body))
        self.assertIn("BODY=8BITMIME", server.commands[1])

    def test_smtputf8_when_needed_and_offered(self) -> None:
        server = ScriptedServer(extensions=[*DEFAULT_EXTENSIONS, "SMTPUTF8"])
        client, server, _ = self.connect(server)
        d = self.send(client, "a@example.org", ["j\u00fcrgen@b\u00fccher.example"], MESSAGE)
        self.successResultOf(d)
        self.assertIn(" SMTPUTF8", server.commands[1])
        self.assertEqual(server.commands[2], "RCPT TO:<j\u00fcrgen@b\u00fccher.example>")

    def test_smtputf8_needed_but_not_offered(self) -> None:
        client, server, _ = self.connect()
        with self.assertRaises(SMTPNotSupportedError) as caught:
            client.send_message("a@example.org", ["j\u00fcrgen@example.org"], MESSAGE)
        self.assertEqual(caught.exception.code, 553)
        self.assertEqual(len(server.commands), 1)

    def test_size_over_the_servers_limit_refused_locally(self) -> None:
        server = ScriptedServer(extensions=["PIPELINING", "SIZE 100"])
        client, server, _ = self.connect(server)
        with self.assertRaises(SMTPSenderRefused) as caught:
            client.send_message("a@example.org", ["b@example.org"], b"x" * 200)
        self.assertEqual(caught.exception.code, 552)
        self.assertEqual(server.commands, ["EHLO localhost"])

    def test_dsn_parameters_only_when_offered(self) -> None:
        params = {"RET": "HDRS", "ENVID": "id1"}
        rcpt = ("b@example.org", {"NOTIFY": "FAILURE", "ORCPT": "rfc822;b@example.org"})
        client, server, _ = self.connect()
        self.successResultOf(
            self.send(client, "a@example.org", [rcpt], MESSAGE, mail_params=params)
        )
        self.assertNotIn("RET=", server.commands[1])
        self.assertEqual(server.commands[2], "RCPT TO:<b@example.org>")
        server2 = ScriptedServer(extensions=[*DEFAULT_EXTENSIONS, "DSN"])
        client, server2, _ = self.connect(server2)
        self.successResultOf(
            self.send(client, "a@example.org", [rcpt], MESSAGE, mail_params=params)
        )
        self.assertIn("RET=HDRS", server2.commands[1])
        self.assertIn("ENVID=id1", server2.commands[1])
        self.assertEqual(
            server2.commands[2],
            "RCPT TO:<b@example.org> NOTIFY=FAILURE ORCPT=rfc822;b@example.org",
        )

    def test_some_recipients_refused(self) -> None:
        def rcpt(argument: str) -> bytes:
            if "nobody" in argument:
                return b"550 5.1.1 no such user\r\n"
            return b"250 2.1.5 ok\r\n"

        client, server, _ = self.connect(ScriptedServer(replies={"RCPT": rcpt}))
        d = self.send(client, "a@example.org", ["b@example.org", "nobody@example.org"], MESSAGE)
        result = self.successResultOf(d)
        self.assertEqual(list(result.accepted), ["b@example.org"])
        self.assertEqual(
            result.refused_dict(), {"nobody@example.org": (550, "5.1.1 no such user")}
        )
        self.assertEqual(server.messages, [MESSAGE])

    def test_all_recipients_refused_then_session_usable(self) -> None:
        server = ScriptedServer(
            replies={
                "RCPT": b"550 5.1.1 no such user\r\n",
                "DATA": b"554 5.5.1 no valid recipients\r\n",
            }
        )
        client, server, _ = self.connect(server)
        d = self.send(client, "a@example.org", ["x@example.org", "y@example.org"], MESSAGE)
        error = self.failureResultOf(d, SMTPRecipientsRefused).value
        self.assertEqual(
            error.recipients,
            {
                "x@example.org": (550, "5.1.1 no such user"),
                "y@example.org": (550, "5.1.1 no such user"),
            },
        )
        self.assertEqual(server.commands[-1], "RSET")
        server.replies.clear()
        self.successResultOf(self.send(client, "a@example.org", ["b@example.org"], MESSAGE))
        self.assertEqual(server.messages, [MESSAGE])

    def test_temporary_refusal_makes_a_temporary_error(self) -> None:
        def rcpt(argument: str) -> bytes:
            return b"450 4.2.0 busy\r\n" if "y@" in argument else b"550 5.1.1 unknown\r\n"

        server = ScriptedServer(replies={"RCPT": rcpt, "DATA": b"554 no\r\n"})
        client, server, _ = self.connect(server)
        d = self.send(client, "a@example.org", ["x@example.org", "y@example.org"], MESSAGE)
        error = self.failureResultOf(d, SMTPRecipientsRefused).value
        self.assertIsInstance(error, TemporaryError)

    def test_sender_refused(self) -> None:
        server = ScriptedServer(replies={"MAIL": b"553 5.1.8 bad sender\r\n"})
        client, server, _ = self.connect(server)
        d = self.send(client, "a@example.org", ["b@example.org"], MESSAGE)
        error = self.failureResultOf(d, SMTPSenderRefused).value
        self.assertEqual(
            (error.code, error.text, error.sender), (553, "5.1.8 bad sender", "a@example.org")
        )
        self.assertEqual(server.commands[-1], "RSET")
        self.assertTrue(client.connected)

    def test_data_refused_after_the_message(self) -> None:
        server = ScriptedServer(replies={".": b"554 5.7.1 spam\r\n"})
        client, server, _ = self.connect(server)
        d = self.send(client, "a@example.org", ["b@example.org"], MESSAGE)
        error = self.failureResultOf(d, SMTPDataError).value
        self.assertEqual((error.code, error.text), (554, "5.7.1 spam"))
        self.assertEqual(server.commands[-1], "RSET")

    def test_354_despite_no_recipient_sends_only_the_end(self) -> None:
        server = ScriptedServer(
            replies={"RCPT": b"550 5.1.1 no\r\n", ".": b"554 5.5.1 nothing\r\n"}
        )
        client, server, _ = self.connect(server)
        d = self.send(client, "a@example.org", ["b@example.org"], MESSAGE)
        self.failureResultOf(d, SMTPRecipientsRefused)
        self.assertEqual(server.messages, [b""])

    def test_421_closes(self) -> None:
        server = ScriptedServer(replies={"MAIL": b"421 4.3.2 shutting down\r\n"})
        client, server, _endpoint = self.connect(server)
        d = self.send(client, "a@example.org", ["b@example.org"], MESSAGE)
        error = self.failureResultOf(d, SMTPServerDisconnected).value
        self.assertEqual(error.code, 421)
        self.assertIsInstance(error, TemporaryError)
        self.assertFalse(client.connected)

    def test_connection_reuse_many_messages_and_concurrent_calls(self) -> None:
        client, server, endpoint = self.connect()
        ds = [
            client.send_message("a@example.org", ["b@example.org"], b"message %d\r\n" % i)
            for i in range(5)
        ]
        endpoint.flush()
        for d in ds:
            self.successResultOf(d)
        self.assertEqual(server.messages, [b"message %d\r\n" % i for i in range(5)])
        self.assertEqual(server.commands.count("EHLO localhost"), 1)

    def test_crlf_nul_refused_before_anything_is_sent(self) -> None:
        client, server, _ = self.connect()
        bad_calls: list[Callable[[], object]] = [
            lambda: client.send_message("a@example.org\r\nRSET", ["b@example.org"], MESSAGE),
            lambda: client.send_message("a@example.org", ["b@example.org\n"], MESSAGE),
            lambda: client.send_message("a@example.org", ["b\x00@example.org"], MESSAGE),
            lambda: client.send_message(
                "a@example.org", ["b@example.org"], MESSAGE, mail_params={"ENVID": "x\r\nDATA"}
            ),
            lambda: client.send_message(
                "a@example.org", [("b@example.org", {"NOTIFY\r\n": None})], MESSAGE
            ),
            lambda: client.mail("a@example.org\r\n"),
            lambda: client.rcpt("b@example.org\r"),
            lambda: client.ehlo("x\r\ny"),
            lambda: client.login("user\r\n", "pw"),
            lambda: client.login("user", "pw\x00"),
        ]
        reads = list(server.reads)
        for call in bad_calls:
            self.assertRaises(LocalProtocolError, call)
        self.endpoint.flush()
        self.assertEqual(server.reads, reads)

    def test_file_object_streamed_in_chunks(self) -> None:
        client, server, _ = self.connect()
        line = b"0123456789" * 7 + b"\n"
        body = line * 5000  # 355 KB, bare LF line endings
        f = io.BytesIO(b"ignored" + body)
        f.seek(7)
        writes = _record_writes(client)
        self.successResultOf(self.send(client, "a@example.org", ["b@example.org"], f))
        self.assertEqual(server.messages, [body.replace(b"\n", b"\r\n")])
        self.assertIn(f"SIZE={len(body)}", server.commands[1])
        self.assertGreater(len(writes), 5)
        self.assertLessEqual(max(writes), 64 * 1024 + 1024)

    def test_backpressure_waits_for_the_transport(self) -> None:
        client, server, endpoint = self.connect()
        transport = client.protocol.transport
        writes = _record_writes(client, pause=True)
        body = b"a" * 500_000
        d = self.send(client, "a@example.org", ["b@example.org"], io.BytesIO(body))
        self.assertNoResult(d)
        big = [w for w in writes if w > 1000]
        self.assertEqual(len(big), 1)  # paused after the first chunk
        for _ in range(20):
            if transport.producer is None:
                break
            self.assertNoResult(d)
            transport.producer.resumeProducing()
            endpoint.flush()
        self.successResultOf(d)
        self.assertEqual(server.messages, [body + b"\r\n"])
        self.assertEqual(len([w for w in writes if w > 1000]), 8)

    def test_large_bytes_streamed(self) -> None:
        client, server, _ = self.connect()
        body = b"x" * 70 + b"\r\n.\r\n" + b"y" * 300_000 + b"\r\n"
        self.successResultOf(self.send(client, "a@example.org", ["b@example.org"], body))
        self.assertEqual(server.messages, [body])

    def test_body_producer(self) -> None:
        client, server, _ = self.connect()
        producer = _ListProducer([b"Subject: p\r\n\r\n", b".dot line\r\n", b"end"])
        self.successResultOf(self.send(client, "a@example.org", ["b@example.org"], producer))
        self.assertEqual(server.messages, [b"Subject: p\r\n\r\n.dot line\r\nend\r\n"])
        self.assertNotIn("SIZE", server.commands[1])

    def test_str_message_and_single_recipient_string(self) -> None:
        client, server, _ = self.connect()
        self.successResultOf(self.send(client, "a@example.org", "b@example.org", "hi\r\n"))
        self.assertEqual(server.messages, [b"hi\r\n"])

    def test_no_recipients(self) -> None:
        client, _, _ = self.connect()
        self.assertRaises(LocalProtocolError, client.send_message, "a@example.org", [], MESSAGE)

    def test_reply_timeout(self) -> None:
        server = ScriptedServer(replies={"MAIL": b"", "RCPT": b"", "DATA": b""})
        client, server, _endpoint = self.connect(server, timeout=10.0)
        d = self.send(client, "a@example.org", ["b@example.org"], MESSAGE)
        self.assertNoResult(d)
        self.clock.advance(11)
        error = self.failureResultOf(d, SMTPServerDisconnected).value
        self.assertIn("no reply", error.text)
        self.assertFalse(client.connected)

    def test_end_of_data_gets_ten_minutes(self) -> None:
        server = ScriptedServer(replies={".": b""})
        client, server, _ = self.connect(server, timeout=10.0)
        d = self.send(client, "a@example.org", ["b@example.org"], MESSAGE)
        self.clock.advance(300)
        self.assertNoResult(d)
        self.assertTrue(client.connected)
        self.clock.advance(301)
        self.failureResultOf(d, SMTPServerDisconnected)

    def test_idle_between_transactions_is_not_a_timeout(self) -> None:
        client, _server, _endpoint = self.connect(timeout=10.0)
        self.clock.advance(100)
        self.assertTrue(client.connected)
        self.successResultOf(self.send(client, "a@example.org", ["b@example.org"], MESSAGE))

    def test_malformed_reply(self) -> None:
        server = ScriptedServer(replies={"MAIL": b"hello there\r\n"})
        client, server, _endpoint = self.connect(server)
        d = self.send(client, "a@example.org", ["b@example.org"], MESSAGE)
        self.failureResultOf(d, RemoteProtocolError)
        self.assertFalse(client.connected)

    def test_connection_lost_mid_transaction(self) -> None:
        def vanish(argument: str) -> bytes:
            server.transport.loseConnection()
            return b""

        server = ScriptedServer(replies={"DATA": vanish})
        client, server, _endpoint = self.connect(server)
        d = self.send(client, "a@example.org", ["b@example.org"], MESSAGE)
        self.failureResultOf(d, SMTPServerDisconnected)


class VerbTests(_Base):
    def test_low_level_transaction(self) -> None:
        client, server, endpoint = self.connect()
        replies = []
        calls: list[Callable[[], Deferred[Any]]] = [
            client.noop,
            lambda: client.mail("a@example.org", {"BODY": "8BITMIME"}),
            lambda: client.rcpt("b@example.org"),
            lambda: client.data(b".x\r\n"),
            client.rset,
        ]
        for call in calls:
            d = call()
            endpoint.flush()
            replies.append(self.successResultOf(d).code)
        self.assertEqual(replies, [250, 250, 250, 250, 250])
        self.assertEqual(
            server.commands[1:],
            ["NOOP", "MAIL FROM:<a@example.org> BODY=8BITMIME", "RCPT TO:<b@example.org>", "DATA",
             "RSET"],
        )  # fmt: skip
        self.assertEqual(server.messages, [b".x\r\n"])

    def test_low_level_failures_carry_the_reply(self) -> None:
        server = ScriptedServer(
            replies={
                "MAIL": b"451 4.3.0 try later\r\n",
                "RCPT": b"550 5.1.1 unknown\r\n",
                "DATA": b"503 5.5.1 no recipients\r\n",
            }
        )
        client, server, endpoint = self.connect(server)
        d = client.mail("a@example.org")
        endpoint.flush()
        error = self.failureResultOf(d, SMTPSenderRefused).value
        self.assertEqual(
            (error.code, error.text, error.sender), (451, "4.3.0 try later", "a@example.org")
        )
        assert error.reply is not None
        self.assertEqual(error.reply.enhanced, "4.3.0")
        d2 = client.rcpt("x@example.org")
        endpoint.flush()
        refused = self.failureResultOf(d2, SMTPRecipientsRefused).value
        self.assertEqual(refused.recipients, {"x@example.org": (550, "5.1.1 unknown")})
        d3 = client.data(b"x")
        endpoint.flush()
        self.assertEqual(self.failureResultOf(d3, SMTPDataError).value.code, 503)

    def test_bdat_verb_needs_chunking(self) -> None:
        client, _, endpoint = self.connect()
        d = client.bdat(b"x")
        endpoint.flush()
        self.failureResultOf(d, SMTPNotSupportedError)

    def test_helo_verb(self) -> None:
        client, server, endpoint = self.connect()
        d = client.helo("other.example")
        endpoint.flush()
        self.successResultOf(d)
        self.assertFalse(client.esmtp)
        self.assertEqual(server.commands[-1], "HELO other.example")


class ChunkingTests(_Base):
    EXT = (*DEFAULT_EXTENSIONS, "CHUNKING", "BINARYMIME")

    def test_small_message_one_write_bdat_last(self) -> None:
        client, server, _ = self.connect(ScriptedServer(extensions=self.EXT))
        d = self.send(client, "a@example.org", ["b@example.org"], b"a\nb\r\n", use_bdat=True)
        self.successResultOf(d)
        self.assertIn(
            b"MAIL FROM:<a@example.org> SIZE=5\r\nRCPT TO:<b@example.org>\r\n"
            b"BDAT 6 LAST\r\na\r\nb\r\n",
            server.reads,
        )
        self.assertEqual(server.messages, [b"a\r\nb\r\n"])

    def test_large_file_in_chunks(self) -> None:
        client, server, _ = self.connect(ScriptedServer(extensions=self.EXT))
        body = (b"line\r\n" * 40000) + b"no newline at end"
        d = self.send(client, "a@example.org", ["b@example.org"], io.BytesIO(body), use_bdat=True)
        self.successResultOf(d)
        self.assertEqual(server.messages, [body])
        self.assertGreater(len(server.bdat_chunks), 2)
        self.assertEqual(server.commands[-1], f"BDAT {server.bdat_chunks[-1]} LAST")

    def test_binarymime_sent_unchanged(self) -> None:
        client, server, _ = self.connect(ScriptedServer(extensions=self.EXT))
        body = bytes(range(256)) * 10
        d = self.send(
            client, "a@example.org", ["b@example.org"], body, mail_params={"BODY": "BINARYMIME"}
        )
        self.successResultOf(d)
        self.assertEqual(server.messages, [body])
        self.assertIn("BODY=BINARYMIME", server.commands[1])

    def test_binarymime_needs_the_extensions(self) -> None:
        client, _server, _ = self.connect()
        with self.assertRaises(SMTPNotSupportedError):
            client.send_message(
                "a@example.org", ["b@example.org"], b"x", mail_params={"BODY": "BINARYMIME"}
            )

    def test_bdat_without_pipelining_waits_per_chunk(self) -> None:
        client, server, _ = self.connect(ScriptedServer(extensions=["CHUNKING"]))
        body = b"z" * 150_000
        d = self.send(client, "a@example.org", ["b@example.org"], body, use_bdat=True)
        self.successResultOf(d)
        self.assertEqual(server.messages, [body])
        self.assertEqual(server.bdat_chunks, [65536, 65536, 18928])

    def test_bdat_refused(self) -> None:
        server = ScriptedServer(extensions=self.EXT, replies={"BDAT": b"552 5.3.4 too big\r\n"})
        client, server, _ = self.connect(server)
        d = self.send(client, "a@example.org", ["b@example.org"], b"x\r\n", use_bdat=True)
        error = self.failureResultOf(d, SMTPDataError).value
        self.assertEqual(error.code, 552)
        self.assertEqual(server.commands[-1], "RSET")

    def test_bdat_from_producer(self) -> None:
        client, server, _ = self.connect(ScriptedServer(extensions=self.EXT))
        producer = _ListProducer([b"one\n", b"two\r\n"])
        d = self.send(client, "a@example.org", ["b@example.org"], producer, use_bdat=True)
        self.successResultOf(d)
        self.assertEqual(server.messages, [b"one\r\ntwo\r\n"])
        self.assertEqual(server.bdat_chunks, [5, 5, 0])


class AuthTests(_Base):
    def test_plain_on_loopback(self) -> None:
        seen: list[str] = []

        def auth(argument: str) -> bytes:
            seen.append(argument)
            return b"235 2.7.0 ok\r\n"

        server = ScriptedServer(
            extensions=[*DEFAULT_EXTENSIONS, "AUTH PLAIN LOGIN"], replies={"AUTH": auth}
        )
        client, server, _ = self.connect(server, username="user", password="secret")
        blob = base64.b64encode(b"\0user\0secret").decode()
        self.assertEqual(seen, [f"PLAIN {blob}"])
        self.assertEqual(client.authenticated_as, "user")

    def test_plaintext_refused_off_loopback_without_tls(self) -> None:
        server = ScriptedServer(extensions=[*DEFAULT_EXTENSIONS, "AUTH PLAIN LOGIN"])
        client, server, _ = self.connect(server, host="mx.example")
        self.assertRaises(SMTPNotSupportedError, client.login, "user", "secret")
        self.assertEqual(server.commands, ["EHLO localhost"])

    def test_auth_not_offered(self) -> None:
        client, _, _ = self.connect()
        self.assertRaises(SMTPNotSupportedError, client.login, "user", "secret")

    def test_cram_md5_preferred_and_failure_carries_code(self) -> None:
        challenge = b"<1.2@mx.example>"
        answers: list[bytes] = []

        def auth(argument: str) -> bytes:
            server.replies[""] = final
            return b"334 " + base64.b64encode(challenge) + b"\r\n"

        def final(argument: str) -> bytes:
            return b"535 5.7.8 bad credentials\r\n"

        server = ScriptedServer(
            extensions=[*DEFAULT_EXTENSIONS, "AUTH PLAIN CRAM-MD5"], replies={"AUTH": auth}
        )
        client, server, endpoint = self.connect(server, host="mx.example")
        d = client.login("user", "secret")
        endpoint.flush()
        error = self.failureResultOf(d, SMTPAuthenticationError).value
        self.assertEqual((error.code, error.text), (535, "5.7.8 bad credentials"))
        answers.append(base64.b64decode(server.commands[-1]))
        digest = hmac.new(b"secret", challenge, hashlib.md5).hexdigest().encode()
        self.assertEqual(answers, [b"user " + digest])
        self.assertEqual(server.commands[-2], "AUTH CRAM-MD5")

    def test_scram_sha_256_with_runner_and_server_verification(self) -> None:
        import scramp  # type: ignore[import-untyped]

        mechanism = scramp.ScramMechanism("SCRAM-SHA-256")
        info = mechanism.make_auth_info("pencil", iteration_count=4096)
        scram_server = mechanism.make_server(lambda username: info)
        step = {"n": 0}

        def auth(argument: str) -> bytes:
            name, _, blob = argument.partition(" ")
            assert name == "SCRAM-SHA-256"
            scram_server.set_client_first(base64.b64decode(blob).decode())
            server.replies[""] = respond
            first = scram_server.get_server_first().encode()
            return b"334 " + base64.b64encode(first) + b"\r\n"

        def respond(argument: str) -> bytes:
            step["n"] += 1
            if step["n"] == 1:
                scram_server.set_client_final(base64.b64decode(argument).decode())
                final = scram_server.get_server_final().encode()
                return b"334 " + base64.b64encode(final) + b"\r\n"
            return b"235 2.7.0 ok\r\n"

        server = ScriptedServer(
            extensions=[*DEFAULT_EXTENSIONS, "AUTH SCRAM-SHA-256 PLAIN"], replies={"AUTH": auth}
        )
        client, server, endpoint = self.connect(server, host="mx.example")
        ran: list[bool] = []

        def runner(f: Callable[[], bytes]) -> Deferred[bytes]:
            ran.append(True)
            return succeed(f())

        client._runner = runner
        d = client.login("user", "pencil")
        endpoint.flush()
        self.assertEqual(self.successResultOf(d).code, 235)
        self.assertEqual(ran, [True])

    def test_scram_server_that_skips_verification_is_refused(self) -> None:
        def auth(argument: str) -> bytes:
            server.replies[""] = final
            nonce = base64.b64decode(argument.split(" ")[1]).decode().split("r=")[1]
            first = f"r={nonce}xyz,s={base64.b64encode(b'salt').decode()},i=4096".encode()
            return b"334 " + base64.b64encode(first) + b"\r\n"

        def final(argument: str) -> bytes:
            return b"235 2.7.0 ok\r\n"

        server = ScriptedServer(
            extensions=[*DEFAULT_EXTENSIONS, "AUTH SCRAM-SHA-256"], replies={"AUTH": auth}
        )
        client, server, endpoint = self.connect(server, host="mx.example")
        d = client.login("user", "pencil")
        endpoint.flush()
        self.failureResultOf(d, SMTPAuthenticationError)
        self.assertFalse(client.connected)


class NoDelayTests(SynchronousTestCase):
    def test_tcp_nodelay_is_set(self) -> None:
        transport = _NoDelayTransport()
        proto = SMTPClientProtocol(30.0)
        proto.clock = MemoryReactorClock()
        proto.makeConnection(transport)
        self.assertEqual(transport.nodelay, [True])


class _NoDelayTransport(StringTransport):
    def __init__(self) -> None:
        super().__init__()
        self.nodelay: list[bool] = []

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.nodelay.append(enabled)


class StartTLSInjectionTests(SynchronousTestCase):
    def test_plaintext_after_220_is_discarded(self) -> None:
        """Replies injected behind STARTTLS's 220 never reach the TLS session (CVE-2011-0411)."""
        clock = MemoryReactorClock()
        proto = SMTPClientProtocol(30.0)
        proto.clock = clock
        transport = _TLSStringTransport()
        proto.makeConnection(transport)
        client = SMTPClient(proto, reactor=clock, peer_host="mx.example")
        proto.dataReceived(b"220 mx ESMTP\r\n")
        d = client.ehlo("me.example")
        proto.dataReceived(b"250-mx\r\n250 STARTTLS\r\n")
        self.successResultOf(d)
        d = client.starttls(tls_options=object())  # type: ignore[arg-type]
        proto.dataReceived(b"220 go ahead\r\n250-mx\r\n250 AUTH PLAIN\r\n")
        self.assertEqual(len(transport.tls_started), 1)
        self.assertNoResult(d)
        proto.handshakeCompleted()
        self.successResultOf(d)
        transport.clear()
        d = client.ehlo()
        self.assertEqual(transport.value(), b"EHLO me.example\r\n")
        self.assertNoResult(d)
        proto.dataReceived(b"250-mx\r\n250 SIZE 10\r\n")
        self.successResultOf(d)
        self.assertEqual(dict(client.extensions.keywords), {"SIZE": ("10",)})


def _record_writes(client: SMTPClient, pause: bool = False) -> list[int]:
    """Record the size of every write the client makes; with ``pause``, pause after big ones."""
    transport = client.protocol.transport
    original = transport.write
    sizes: list[int] = []

    def write(data: bytes) -> None:
        sizes.append(len(data))
        original(data)
        if pause and len(data) > 1000 and transport.producer is not None:
            transport.producer.pauseProducing()

    transport.write = write
    return sizes


class _TLSStringTransport(StringTransport):
    def __init__(self) -> None:
        super().__init__()
        self.tls_started: list[object] = []

    def startTLS(self, context: object, normal: bool = True) -> None:
        self.tls_started.append(context)


class _ListProducer:
    """A body producer that writes its chunks at once."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.length = "twisted.web.iweb.UNKNOWN_LENGTH"

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        for chunk in self.chunks:
            consumer.write(chunk)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass
