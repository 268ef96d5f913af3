"""Tests for netproto_twisted.core.tls, and STARTTLS / implicit TLS over real loopback sockets."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import re
import socket
import ssl as stdlib_ssl
import threading
from pathlib import Path
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from service_identity.exceptions import VerificationError
from twisted.internet import defer, ssl, threads
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    SSL4ServerEndpoint,
    TCP4ClientEndpoint,
    serverFromString,
    wrapClientTLS,
)
from twisted.internet.interfaces import IListeningPort, IOpenSSLClientConnectionCreator
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactor, MemoryReactorClock, StringTransport
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from twisted.protocols.policies import WrappingFactory
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase, TestCase

from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.lineproto import LineFactory, LineProtocol
from netproto_twisted.core.tls import (
    HandshakeTimeout,
    certificate_fingerprint,
    client_options,
    ensure_dev_certificate,
    server_context,
    tls_server_endpoint_args,
)

UTC = datetime.timezone.utc


# --- certificate helpers --------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    days: int = 30,
) -> x509.Certificate:
    now = datetime.datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=2))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_chain(directory: Path) -> dict[str, Path]:
    """Write root CA, intermediate CA and leaf certificate files; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    root_key, inter_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _issue("Test Root", root_key, "Test Root", root_key, ca=True)
    inter = _issue("Test Intermediate", inter_key, "Test Root", root_key, ca=True)
    leaf = _issue("localhost", leaf_key, "Test Intermediate", inter_key, ca=False)
    files = {
        "root": _pem(root),
        "inter": _pem(inter),
        "leaf": _pem(leaf),
        "fullchain": _pem(leaf) + _pem(inter),
        "key": _pem_key(leaf_key),
    }
    paths = {}
    for name, data in files.items():
        path = directory / f"{name}.pem"
        path.write_bytes(data)
        paths[name] = path
    return paths


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


# --- ensure_dev_certificate, certificate_fingerprint ------------------------------------


class DevCertificateTests(SynchronousTestCase):
    def test_creates_pair(self) -> None:
        data_dir = Path(self.mktemp())
        cert_path, key_path = ensure_dev_certificate(data_dir)
        self.assertEqual(cert_path, data_dir.absolute() / "tls" / "dev-cert.pem")
        self.assertEqual(key_path, data_dir.absolute() / "tls" / "dev-key.pem")
        self.assertEqual(key_path.stat().st_mode & 0o777, 0o600)
        cert = load_cert(cert_path)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(san.get_values_for_type(x509.DNSName), ["localhost"])
        self.assertEqual(
            set(san.get_values_for_type(x509.IPAddress)),
            {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")},
        )
        lifetime = cert.not_valid_after_utc - datetime.datetime.now(UTC)
        self.assertTrue(datetime.timedelta(days=360) < lifetime <= datetime.timedelta(days=366))
        self.assertEqual(cert.issuer, cert.subject)
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self.assertEqual(key.curve.name, "secp256r1")
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        public = cert.public_key().public_bytes(*spki)
        self.assertEqual(key.public_key().public_bytes(*spki), public)
        leftovers = [p.name for p in cert_path.parent.iterdir() if p.name.endswith(".tmp")]
        self.assertEqual(leftovers, [])

    def test_reused(self) -> None:
        data_dir = self.mktemp()
        cert_path, key_path = ensure_dev_certificate(data_dir)
        before = (cert_path.read_bytes(), key_path.read_bytes())
        again = ensure_dev_certificate(FilePath(data_dir))
        self.assertEqual(again, (cert_path, key_path))
        self.assertEqual((cert_path.read_bytes(), key_path.read_bytes()), before)

    def test_renewed_when_expiring_soon(self) -> None:
        data_dir = Path(self.mktemp())
        cert_path, key_path = ensure_dev_certificate(data_dir)
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        cert_path.write_bytes(_pem(_issue("localhost", key, "localhost", key, ca=False, days=10)))
        old = certificate_fingerprint(cert_path)
        ensure_dev_certificate(data_dir)
        self.assertNotEqual(certificate_fingerprint(cert_path), old)
        remaining = load_cert(cert_path).not_valid_after_utc - datetime.datetime.now(UTC)
        self.assertGreater(remaining, datetime.timedelta(days=300))

    def test_renewed_when_key_mismatched_or_garbage(self) -> None:
        data_dir = Path(self.mktemp())
        cert_path, key_path = ensure_dev_certificate(data_dir)
        for damage in (
            lambda: key_path.write_bytes(_pem_key(ec.generate_private_key(ec.SECP256R1()))),
            lambda: cert_path.write_bytes(b"garbage"),
            lambda: key_path.unlink(),
        ):
            damage()
            ensure_dev_certificate(data_dir)
            # The pair is whole again: server_context accepts it.
            server_context(cert_path, key_path)

    def test_concurrent_callers_agree(self) -> None:
        """Callers racing on a fresh directory all get the same, whole pair."""
        data_dir = Path(self.mktemp())
        results: list[tuple[Path, Path]] = []
        fingerprints: list[str] = []

        def call() -> None:
            pair = ensure_dev_certificate(data_dir)
            results.append(pair)
            fingerprints.append(certificate_fingerprint(pair[0]))

        workers = [threading.Thread(target=call) for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=30)
        self.assertEqual(len(set(results)), 1)
        self.assertEqual(len(set(fingerprints)), 1)
        server_context(*results[0])

    def test_unusable_data_dir(self) -> None:
        blocker = Path(self.mktemp())
        blocker.write_bytes(b"a file, not a directory")
        with self.assertRaises(ConfigError) as caught:
            ensure_dev_certificate(blocker)
        self.assertIn(str(blocker), str(caught.exception))

    def test_fingerprint(self) -> None:
        cert_path, _ = ensure_dev_certificate(self.mktemp())
        fingerprint = certificate_fingerprint(str(cert_path))
        self.assertRegex(fingerprint, r"^SHA256(:[0-9A-F]{2}){32}$")
        der = load_cert(cert_path).public_bytes(serialization.Encoding.DER)
        expected = hashlib.sha256(der).hexdigest().upper()
        self.assertEqual(fingerprint.replace(":", "")[len("SHA256") :], expected)


# --- server_context, client_options, tls_server_endpoint_args ---------------------------


class ServerContextTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.cert, self.key = ensure_dev_certificate(self.mktemp())

    def assertConfigError(self, path: Path, reason: str, *args: Any, **kw: Any) -> None:
        with self.assertRaises(ConfigError) as caught:
            server_context(*args, **kw)
        error = caught.exception
        self.assertEqual(error.key, str(path))
        self.assertIn(reason, error.reason)
        self.assertNotIn("\n", str(error))

    def test_options(self) -> None:
        context = server_context(self.cert, self.key).getContext()
        # set_options returns the options in force (the stubs say None).
        options: Any = context.set_options(0)  # type: ignore[func-returns-value]
        for flag in (SSL.OP_NO_COMPRESSION, SSL.OP_NO_TLSv1, SSL.OP_NO_TLSv1_1, SSL.OP_NO_SSLv3):
            self.assertTrue(options & flag, flag)

    def test_missing_files(self) -> None:
        missing = Path(self.mktemp())
        self.assertConfigError(missing, "not found", missing, self.key)
        self.assertConfigError(missing, "not found", self.cert, missing)
        self.assertConfigError(missing, "not found", self.cert, self.key, chain_path=missing)

    def test_directory(self) -> None:
        directory = self.cert.parent
        self.assertConfigError(directory, "directory", directory, self.key)

    def test_unreadable(self) -> None:
        if os.geteuid() == 0:
            raise self.skipTest("root reads any file")
        unreadable = Path(self.mktemp())
        unreadable.write_bytes(self.key.read_bytes())
        unreadable.chmod(0)
        self.assertConfigError(unreadable, "permission denied", self.cert, unreadable)

    def test_garbage(self) -> None:
        garbage = Path(self.mktemp())
        garbage.write_bytes(b"-----BEGIN NONSENSE-----\nxx\n")
        self.assertConfigError(garbage, "no valid PEM certificate", garbage, self.key)
        self.assertConfigError(garbage, "no valid PEM private key", self.cert, garbage)

    def test_key_swapped_for_certificate(self) -> None:
        self.assertConfigError(self.cert, "no valid PEM private key", self.cert, self.cert)

    def test_mismatched_key(self) -> None:
        other = Path(self.mktemp())
        other.write_bytes(_pem_key(ec.generate_private_key(ec.SECP256R1())))
        self.assertConfigError(other, "does not match", self.cert, other)

    def test_encrypted_key(self) -> None:
        key = serialization.load_pem_private_key(self.key.read_bytes(), None)
        encrypted = Path(self.mktemp())
        encrypted.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            )
        )
        self.assertConfigError(encrypted, "encrypted", self.cert, encrypted)

    def test_combined_file(self) -> None:
        """One PEM file holding both certificate and key works, in either order."""
        for first, second in ((self.cert, self.key), (self.key, self.cert)):
            combined = Path(self.mktemp())
            combined.write_bytes(first.read_bytes() + second.read_bytes())
            server_context(combined, combined)
            endpoint = serverFromString(
                MemoryReactor(), "ssl:0:" + tls_server_endpoint_args(combined, combined)
            )
            self.assertIsInstance(endpoint, SSL4ServerEndpoint)

    def test_expired_certificate_warned(self) -> None:
        logged: list[LogEvent] = []
        observer = cast(ILogObserver, logged.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        key = serialization.load_pem_private_key(self.key.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        expired = Path(self.mktemp())
        expired.write_bytes(_pem(_issue("localhost", key, "localhost", key, ca=False, days=-1)))
        server_context(expired, self.key)
        warnings = [e for e in logged if "expired" in e.get("log_format", "")]
        self.assertEqual([e["path"] for e in warnings], [str(expired)])

    def test_chain_loaded(self) -> None:
        chain = make_chain(Path(self.mktemp()))
        server_context(chain["fullchain"], chain["key"])
        server_context(chain["leaf"], chain["key"], chain_path=chain["inter"])

    def test_client_options_types(self) -> None:
        for creator in (
            client_options("localhost", ca_file=self.cert),
            client_options("localhost", verify=False),
            client_options("localhost", ca_file=self.cert, client_cert=(self.cert, self.key)),
            client_options("127.0.0.1", verify=False, client_cert=(self.cert, self.key)),
            client_options("mail.example"),
        ):
            self.assertTrue(IOpenSSLClientConnectionCreator.providedBy(creator))

    def test_client_options_bad_files(self) -> None:
        missing = Path(self.mktemp())
        with self.assertRaises(ConfigError) as caught:
            client_options("localhost", ca_file=missing)
        self.assertEqual(caught.exception.key, str(missing))
        other = Path(self.mktemp())
        other.write_bytes(_pem_key(ec.generate_private_key(ec.SECP256R1())))
        self.assertRaises(ConfigError, client_options, "h", client_cert=(self.cert, other))


class EndpointArgsTests(SynchronousTestCase):
    def test_escaping(self) -> None:
        directory = Path(self.mktemp()).absolute() / "c:e=r\\t"
        cert, key = ensure_dev_certificate(directory)
        escaped = str(directory).replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")
        self.assertEqual(
            tls_server_endpoint_args(cert, key),
            f"privateKey={escaped}/tls/dev-key.pem:certKey={escaped}/tls/dev-cert.pem",
        )
        self.assertIn("c\\:e\\=r\\\\t", escaped)

    def test_missing_certificate(self) -> None:
        self.assertRaises(ConfigError, tls_server_endpoint_args, self.mktemp(), self.mktemp())

    def test_parsed_by_twisted(self) -> None:
        """A path with ':', '=' and '\\' survives Twisted's endpoint parser."""
        data_dir = Path(self.mktemp()) / "we:ird=dir\\x"
        cert, key = ensure_dev_certificate(data_dir)
        endpoint = serverFromString(
            MemoryReactor(), "ssl:0:interface=127.0.0.1:" + tls_server_endpoint_args(cert, key)
        )
        self.assertIsInstance(endpoint, SSL4ServerEndpoint)

    def test_fullchain_adds_extra_chain(self) -> None:
        chain = make_chain(Path(self.mktemp()))
        args = tls_server_endpoint_args(chain["fullchain"], chain["key"])
        self.assertIn("extraCertChain=", args)
        self.assertNotIn("extraCertChain=", tls_server_endpoint_args(chain["leaf"], chain["key"]))
        explicit = tls_server_endpoint_args(chain["leaf"], chain["key"], chain_path=chain["inter"])
        self.assertTrue(explicit.endswith("inter.pem"))


class HandshakeTimeoutTests(SynchronousTestCase):
    def test_expires(self) -> None:
        clock = MemoryReactorClock()
        transport = StringTransport()
        fired: list[bool] = []
        timer = HandshakeTimeout(clock, transport, 5, on_timeout=lambda: fired.append(True))
        self.assertTrue(timer.active)
        clock.advance(4.9)
        self.assertFalse(transport.disconnecting)
        clock.advance(0.1)
        self.assertTrue(timer.expired)
        self.assertFalse(timer.active)
        self.assertEqual(fired, [True])
        self.assertTrue(transport.disconnecting)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_completed(self) -> None:
        clock = MemoryReactorClock()
        transport = StringTransport()
        timer = HandshakeTimeout(clock, transport, 5)
        timer.completed()
        timer.cancel()
        self.assertEqual(clock.getDelayedCalls(), [])
        clock.advance(10)
        self.assertFalse(timer.expired)
        self.assertFalse(transport.disconnecting)


# --- real loopback TLS ------------------------------------------------------------------


class StartTLSServer(LineProtocol):
    """A tiny STARTTLS server: STARTTLS, NOOP (reports what it saw), QUIT."""

    factory: ServerFactory

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[bytes] = []
        self.resets = 0
        self.established = 0
        self.timers_after_handshake = -1
        self.peer_certificate: Any = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self.factory.instances.append(self)
        self.factory.connected.callback(self) if not self.factory.connected.called else None
        if self.factory.greet:
            self.send_line(b"220 hello")

    def line_received(self, line: bytes) -> None:
        self.seen.append(line)
        if line == b"STARTTLS":
            self.send_line(b"220 go ahead")
            self.start_tls(self.factory.tls_context)
        elif line == b"NOOP":
            clock: Any = self.factory.reactor
            if isinstance(clock, MemoryReactorClock):
                # Past the handshake timeout: the timer must not kill a live session.
                clock.advance(31)
            secure = b" secure" if self.is_secure else b""
            self.send_line(b"250 " + b",".join(self.seen) + secure)
        elif line == b"QUIT":
            self.send_line(b"221 bye")
            self.transport.loseConnection()

    def reset_session(self) -> None:
        self.resets += 1

    def tls_established(self) -> None:
        self.established += 1
        self.peer_certificate = self.transport.getPeerCertificate()
        clock: Any = self.factory.reactor
        if isinstance(clock, MemoryReactorClock):
            self.timers_after_handshake = len(clock.getDelayedCalls())

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        super().connectionLost(reason)
        if not self.factory.lost.called:
            self.factory.lost.callback(self)


class ServerFactory(LineFactory[StartTLSServer]):
    protocol = StartTLSServer

    def __init__(self, reactor: Any, tls_context: Any, *, greet: bool = False) -> None:
        super().__init__(reactor)
        self.tls_context = tls_context
        self.greet = greet
        self.instances: list[StartTLSServer] = []
        self.connected: Deferred[StartTLSServer] = Deferred()
        self.lost: Deferred[StartTLSServer] = Deferred()


class Client(LineProtocol):
    """Sends STARTTLS and an injected RSET in one packet, upgrades, then NOOP and QUIT."""

    factory: ClientFactory

    def __init__(self) -> None:
        super().__init__()
        self.replies: list[bytes] = []
        self.established = 0

    def connectionMade(self) -> None:
        super().connectionMade()
        if self.factory.starttls:
            self.transport.write(b"STARTTLS\r\nRSET\r\n")

    def line_received(self, line: bytes) -> None:
        self.replies.append(line)
        if line == b"220 go ahead":
            self.start_tls(self.factory.tls_options, server=False)
        elif line == b"220 hello":
            self.send_line(b"NOOP")
        elif line.startswith(b"250 "):
            self.send_line(b"QUIT")

    def tls_established(self) -> None:
        self.established += 1
        if self.factory.starttls:
            self.send_line(b"NOOP")

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        super().connectionLost(reason)
        self.factory.done.callback((self, reason))


class ClientFactory(LineFactory[Client]):
    protocol = Client

    def __init__(self, reactor: Any, tls_options: Any, *, starttls: bool = True) -> None:
        super().__init__(reactor)
        self.tls_options = tls_options
        self.starttls = starttls
        self.done: Deferred[tuple[Client, Failure]] = Deferred()


class LoopbackTLSTests(TestCase):
    """Real client and server on 127.0.0.1: STARTTLS, implicit TLS, verification."""

    timeout = 20

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor: Any = reactor
        self.cert, self.key = ensure_dev_certificate(self.mktemp())

    def listen(self, factory: Any, description: str | None = None) -> Deferred[int]:
        if description is None:
            description = "tcp:0:interface=127.0.0.1"
        endpoint = serverFromString(self.reactor, description)
        d = endpoint.listen(factory)

        def listening(port: IListeningPort) -> int:
            self.addCleanup(port.stopListening)
            address: Any = port.getHost()
            return int(address.port)

        result: Deferred[int] = d.addCallback(listening)
        return result

    @defer.inlineCallbacks
    def starttls_exchange(self, options: Any) -> Any:
        server_factory = ServerFactory(self.reactor, server_context(self.cert, self.key))
        port = yield self.listen(server_factory)
        client_factory = ClientFactory(self.reactor, options)
        yield TCP4ClientEndpoint(self.reactor, "127.0.0.1", port).connect(client_factory)
        client, reason = yield client_factory.done
        server = yield server_factory.lost
        return client, server, reason

    @defer.inlineCallbacks
    def test_starttls_verified_and_injection_discarded(self) -> Any:
        client, server, _ = yield self.starttls_exchange(
            client_options("localhost", ca_file=self.cert)
        )
        self.assertEqual(
            client.replies, [b"220 go ahead", b"250 STARTTLS,NOOP secure", b"221 bye"]
        )
        self.assertEqual(server.seen, [b"STARTTLS", b"NOOP", b"QUIT"])
        self.assertEqual(server.resets, 1)
        self.assertEqual((server.established, client.established), (1, 1))
        self.assertTrue(client.is_secure)

    @defer.inlineCallbacks
    def test_starttls_wrong_host_name_rejected(self) -> Any:
        client, server, reason = yield self.starttls_exchange(
            client_options("wrong.example", ca_file=self.cert)
        )
        self.assertEqual(client.replies, [b"220 go ahead"])
        self.assertEqual(server.seen, [b"STARTTLS"])
        self.assertEqual(client.established, 0)
        self.assertTrue(reason.check(VerificationError), reason)

    @defer.inlineCallbacks
    def test_starttls_untrusted_certificate_rejected(self) -> Any:
        other_cert, _ = ensure_dev_certificate(self.mktemp())
        client, _, reason = yield self.starttls_exchange(
            client_options("localhost", ca_file=other_cert)
        )
        self.assertEqual(client.replies, [b"220 go ahead"])
        self.assertTrue(reason.check(SSL.Error), reason)

    @defer.inlineCallbacks
    def test_starttls_unverified_when_asked(self) -> Any:
        client, _, _ = yield self.starttls_exchange(client_options("wrong.example", verify=False))
        self.assertEqual(client.replies[1], b"250 STARTTLS,NOOP secure")

    @defer.inlineCallbacks
    def implicit_exchange(
        self, server_description: str, options: Any, *, wrap: bool = False
    ) -> Any:
        clock = MemoryReactorClock()
        server_factory = ServerFactory(clock, None, greet=True)
        listening: Any = WrappingFactory(server_factory) if wrap else server_factory
        port = yield self.listen(listening, server_description)
        client_factory = ClientFactory(self.reactor, None, starttls=False)
        endpoint = wrapClientTLS(options, TCP4ClientEndpoint(self.reactor, "127.0.0.1", port))
        yield endpoint.connect(client_factory)
        server = yield server_factory.connected
        # The handshake timer runs on the server's (fake) clock from connectionMade.
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        client, _ = yield client_factory.done
        yield server_factory.lost
        if not wrap:
            self.assertEqual(server.timers_after_handshake, 0)
        self.assertEqual(clock.getDelayedCalls(), [])
        return client, server

    @defer.inlineCallbacks
    def test_implicit_tls_endpoint_string(self) -> Any:
        """``ssl:`` with tls_server_endpoint_args (awkward path) serves a verified client."""
        cert, key = ensure_dev_certificate(Path(self.mktemp()) / "a:b=c\\d")
        description = "ssl:0:interface=127.0.0.1:" + tls_server_endpoint_args(cert, key)
        client, server = yield self.implicit_exchange(
            description, client_options("localhost", ca_file=cert)
        )
        self.assertEqual(client.replies, [b"220 hello", b"250 NOOP secure", b"221 bye"])
        self.assertTrue(client.is_secure)
        self.assertEqual(server.established, 1)

    @defer.inlineCallbacks
    def test_implicit_tls_through_protocol_wrapper(self) -> Any:
        """Behind a plain ProtocolWrapper, implicit TLS is still seen as secure.

        Twisted's ProtocolWrapper does not pass ``handshakeCompleted`` on: the
        handshake timer must then notice by itself that the handshake is done.
        """
        description = "ssl:0:interface=127.0.0.1:" + tls_server_endpoint_args(self.cert, self.key)
        client, server = yield self.implicit_exchange(
            description, client_options("localhost", ca_file=self.cert), wrap=True
        )
        self.assertEqual(client.replies[1], b"250 NOOP secure")
        self.assertEqual(server.established, 0)

    @defer.inlineCallbacks
    def test_starttls_through_protocol_wrapper(self) -> Any:
        clock = MemoryReactorClock()
        server_factory = ServerFactory(clock, server_context(self.cert, self.key))
        port = yield self.listen(WrappingFactory(server_factory))
        options = client_options("localhost", ca_file=self.cert)
        client_factory = ClientFactory(self.reactor, options)
        yield TCP4ClientEndpoint(self.reactor, "127.0.0.1", port).connect(client_factory)
        client, _ = yield client_factory.done
        server = yield server_factory.lost
        self.assertEqual(client.replies[1], b"250 STARTTLS,NOOP secure")
        self.assertEqual(server.established, 0)
        self.assertEqual(clock.getDelayedCalls(), [])

    @defer.inlineCallbacks
    def test_implicit_tls_ip_address_verified(self) -> Any:
        """The dev certificate also verifies for the literal IP 127.0.0.1."""
        description = "ssl:0:interface=127.0.0.1:" + tls_server_endpoint_args(self.cert, self.key)
        client, _ = yield self.implicit_exchange(
            description, client_options("127.0.0.1", ca_file=self.cert)
        )
        self.assertEqual(client.replies[1], b"250 NOOP secure")

    @defer.inlineCallbacks
    def test_chain_sent_from_fullchain_file(self) -> Any:
        """A client trusting only the root verifies the leaf: the intermediate is sent."""
        chain = make_chain(Path(self.mktemp()))
        trusting_root = client_options("localhost", ca_file=chain["root"])
        description = "ssl:0:interface=127.0.0.1:" + tls_server_endpoint_args(
            chain["fullchain"], chain["key"]
        )
        client, _ = yield self.implicit_exchange(description, trusting_root)
        self.assertEqual(client.replies[1], b"250 NOOP secure")
        # And through server_context, used directly.
        server_factory = ServerFactory(self.reactor, None, greet=True)
        context = server_context(chain["fullchain"], chain["key"])
        endpoint = SSL4ServerEndpoint(self.reactor, 0, context, interface="127.0.0.1")
        port = yield endpoint.listen(server_factory)
        self.addCleanup(port.stopListening)
        client_factory = ClientFactory(self.reactor, None, starttls=False)
        yield wrapClientTLS(
            trusting_root, TCP4ClientEndpoint(self.reactor, "127.0.0.1", port.getHost().port)
        ).connect(client_factory)
        client, _ = yield client_factory.done
        self.assertEqual(client.replies[1], b"250 NOOP secure")

    @defer.inlineCallbacks
    def test_leaf_without_chain_fails(self) -> Any:
        """Control for the test above: without the intermediate, verification fails."""
        chain = make_chain(Path(self.mktemp()))
        server_factory = ServerFactory(self.reactor, None, greet=True)
        endpoint = SSL4ServerEndpoint(
            self.reactor, 0, server_context(chain["leaf"], chain["key"]), interface="127.0.0.1"
        )
        port = yield endpoint.listen(server_factory)
        self.addCleanup(port.stopListening)
        client_factory = ClientFactory(self.reactor, None, starttls=False)
        yield wrapClientTLS(
            client_options("localhost", ca_file=chain["root"]),
            TCP4ClientEndpoint(self.reactor, "127.0.0.1", port.getHost().port),
        ).connect(client_factory)
        client, reason = yield client_factory.done
        self.assertEqual(client.replies, [])
        self.assertTrue(reason.check(SSL.Error), reason)

    @defer.inlineCallbacks
    def client_certificate_exchange(self, client_cert: Any) -> Any:
        """Connect to a server that requires a client certificate signed by ``client_ca``."""
        leaf = load_cert(self.cert)
        key = serialization.load_pem_private_key(self.key.read_bytes(), None)
        client_ca = ssl.Certificate.loadPEM(self.client_cert.read_bytes())
        options: Any = ssl.CertificateOptions(
            privateKey=key,  # type: ignore[arg-type]
            certificate=leaf,  # type: ignore[arg-type]
            trustRoot=ssl.trustRootFromCertificates([client_ca]),
        )
        server_factory = ServerFactory(self.reactor, None, greet=True)
        endpoint = SSL4ServerEndpoint(self.reactor, 0, options, interface="127.0.0.1")
        port = yield endpoint.listen(server_factory)
        self.addCleanup(port.stopListening)
        client_factory = ClientFactory(self.reactor, None, starttls=False)
        creator = client_options("localhost", ca_file=self.cert, client_cert=client_cert)
        yield wrapClientTLS(
            creator, TCP4ClientEndpoint(self.reactor, "127.0.0.1", port.getHost().port)
        ).connect(client_factory)
        client, reason = yield client_factory.done
        return client, server_factory.instances[0], reason

    @defer.inlineCallbacks
    def test_client_certificate_presented(self) -> Any:
        self.client_cert, client_key = ensure_dev_certificate(self.mktemp())
        pem = self.client_cert.read_bytes() + client_key.read_bytes()
        for client_cert in ((self.client_cert, client_key), ssl.PrivateCertificate.loadPEM(pem)):
            client, server, _ = yield self.client_certificate_exchange(client_cert)
            self.assertEqual(client.replies[1], b"250 NOOP secure")
            self.assertEqual(
                server.peer_certificate.digest("sha256").decode(),
                certificate_fingerprint(self.client_cert)[len("SHA256:") :],
            )

    @defer.inlineCallbacks
    def test_client_certificate_required(self) -> Any:
        """Control for the test above: without one, that server refuses the client."""
        self.client_cert, _ = ensure_dev_certificate(self.mktemp())
        client, _, reason = yield self.client_certificate_exchange(None)
        self.assertEqual(client.replies, [])
        self.assertTrue(reason.check(SSL.Error), reason)

    @defer.inlineCallbacks
    def test_implicit_tls_handshake_timeout(self) -> Any:
        """A peer that never starts the handshake is cut off when the timer fires."""
        clock = MemoryReactorClock()
        server_factory = ServerFactory(clock, None)
        description = "ssl:0:interface=127.0.0.1:" + tls_server_endpoint_args(self.cert, self.key)
        port = yield self.listen(server_factory, description)
        lost: Deferred[None] = Deferred()

        class Silent(Protocol):
            def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
                lost.callback(None)

        from twisted.internet.protocol import Factory

        yield TCP4ClientEndpoint(self.reactor, "127.0.0.1", port).connect(
            Factory.forProtocol(Silent)
        )
        yield server_factory.connected
        clock.advance(30)
        yield lost
        yield server_factory.lost
        self.assertEqual(clock.getDelayedCalls(), [])

    @defer.inlineCallbacks
    def test_stdlib_client_verifies_dev_certificate(self) -> Any:
        """Interop: Python's ssl module trusts the dev certificate for 'localhost'."""
        server_factory = ServerFactory(self.reactor, None, greet=True)
        description = "ssl:0:interface=127.0.0.1:" + tls_server_endpoint_args(self.cert, self.key)
        port = yield self.listen(server_factory, description)
        cafile = str(self.cert)

        def talk() -> list[bytes]:
            context = stdlib_ssl.create_default_context(cafile=cafile)
            with (
                socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                context.wrap_socket(raw, server_hostname="localhost") as tls,
            ):
                reader = tls.makefile("rb")
                greeting = reader.readline()
                tls.sendall(b"QUIT\r\n")
                bye = reader.readline()
                version = (tls.version() or "").encode()
                return [greeting, bye, version]

        greeting, bye, version = yield threads.deferToThread(talk)
        yield server_factory.lost
        self.assertEqual((greeting, bye), (b"220 hello\r\n", b"221 bye\r\n"))
        self.assertTrue(re.match(rb"TLSv1\.[23]$", version), version)
