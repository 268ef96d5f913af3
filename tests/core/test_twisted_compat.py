"""core._twisted_compat: the fast paths are really taken on the installed Twisted.

Each use of a private Twisted attribute has a public fallback, so a Twisted
release that renames one would slow us down or coarsen a behaviour without a
single failure.  These tests fail instead: they assert that each ``HAS_*``
flag holds and that each private attribute is where the compat module reads
it.  When one fails after a Twisted upgrade, adapt the compat module (or
accept the fallback and change the test, saying so).

The last test greps the package: no Twisted private name outside the compat module.
"""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import inspect
import os
import re
import socket
import stat
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import abstract, defer, reactor, tcp, unix
from twisted.internet.base import DelayedCall
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol, ServerFactory
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.trial.unittest import SynchronousTestCase, TestCase

import netproto_twisted
from netproto_twisted.core import _twisted_compat as compat
from netproto_twisted.core.net import raw_tcp_connection

PACKAGE = Path(netproto_twisted.__file__).parent
COMPAT = Path(compat.__file__)


class FlagTests(SynchronousTestCase):
    """Every fast path is available on the installed Twisted."""

    def test_tls_client_default(self) -> None:
        self.assertTrue(compat.HAS_TLS_CLIENT_DEFAULT)
        self.assertIs(tcp.Client._tlsClientDefault, True)
        self.assertIs(tcp.Server._tlsClientDefault, False)

    def test_deferred_internals(self) -> None:
        self.assertTrue(compat.HAS_DEFERRED_INTERNALS)
        self.assertIs(compat.succeeded, compat._fast_succeeded)
        self.assertIsNot(compat._fire_quietly, compat._public_fire_quietly)
        self.assertIn(compat.CALLBACKS_ATTRIBUTE, ("_callbacks", "callbacks"))
        d: Deferred[None] = Deferred()
        self.assertEqual(vars(d)[compat.CALLBACKS_ATTRIBUTE], [])

    def test_unix_adopt(self) -> None:
        self.assertTrue(compat.HAS_UNIX_ADOPT)
        self.assertTrue(callable(unix.Port._fromListeningDescriptor))
        assert compat.UNIX_PATH_ATTRIBUTE is not None
        port = unix.Port(b"/tmp/x.sock", Factory())
        self.assertEqual(getattr(port, compat.UNIX_PATH_ATTRIBUTE), b"/tmp/x.sock")

    def test_generic_http_channel(self) -> None:
        from twisted.web import http

        self.assertTrue(compat.HAS_GENERIC_HTTP_CHANNEL)
        channel = http.HTTPChannel()
        wrapped = compat.http_channel_protocol(channel)
        self.assertIsInstance(wrapped, http._GenericHTTPChannelProtocol)
        self.assertIs(wrapped._channel, channel)

    def test_tls_handover(self) -> None:
        # The live handover is tests.core.test_tls_sendfile (its sends fail on the fallback).
        self.assertTrue(compat.HAS_TLS_HANDOVER)
        for name in compat.TLS_LAYER_ATTRIBUTES:
            self.assertTrue(hasattr(TLSMemoryBIOProtocol, name), name)
        fd = abstract.FileDescriptor(reactor=reactor)
        self.assertEqual((fd._tempDataLen, fd.dataBuffer, fd.offset), (0, b"", 0))
        self.assertFalse(compat.can_take_tls_connection(fd))
        self.assertIsNone(compat.take_tls_connection(object()))

    def test_eager_attributes_are_on_a_file_descriptor(self) -> None:
        fd = abstract.FileDescriptor(reactor=reactor)
        self.assertEqual(fd._tempDataBuffer, [])
        self.assertIs(fd._writeDisconnecting, False)
        self.assertIs(fd._writeDisconnected, False)


class GenericFactoryTests(SynchronousTestCase):
    """GenericFactory[P] works as a base class on every supported Twisted."""

    def test_flag_matches_the_release(self) -> None:
        from twisted import version

        generic = (version.major, version.minor) >= (26, 4)
        self.assertEqual(compat.HAS_GENERIC_FACTORY, generic)
        self.assertEqual(compat.GenericFactory is Factory, generic)

    def test_subclass(self) -> None:
        class Mine(compat.GenericFactory[Protocol]):
            protocol = Protocol

        self.assertTrue(issubclass(Mine, Factory))
        self.assertIsInstance(Mine().buildProtocol(None), Protocol)


class TLSDirectionTests(SynchronousTestCase):
    """tls_client_default: the same answers from the private attribute and the fallback."""

    def answers(self) -> list[bool | None]:
        return [
            compat.tls_client_default(object.__new__(tcp.Client)),
            compat.tls_client_default(object.__new__(tcp.Server)),
            compat.tls_client_default(object()),
        ]

    def test_fast_and_fallback_agree(self) -> None:
        self.assertEqual(self.answers(), [True, False, None])
        self.patch(compat, "HAS_TLS_CLIENT_DEFAULT", False)
        self.assertEqual(self.answers(), [True, False, None])


class DeferredTests(SynchronousTestCase):
    """The Deferred fast paths behave as callback() and succeed() do."""

    def check(self) -> None:
        d: Deferred[int] = Deferred()
        self.assertFalse(compat.has_callbacks(d) and compat.HAS_DEFERRED_INTERNALS)
        compat.fire_quietly(d, 7)
        self.assertTrue(d.called)
        self.assertEqual(self.successResultOf(d), 7)
        e: Deferred[int] = Deferred()
        seen: list[int] = []
        e.addCallback(seen.append)
        self.assertTrue(compat.has_callbacks(e))
        compat.fire_quietly(e, 8)  # has callbacks: a real callback()
        self.assertEqual(seen, [8])
        s = compat.succeeded()
        self.assertIsNone(self.successResultOf(s))
        self.assertRaises(defer.AlreadyCalledError, s.callback, None)

    def test_fast(self) -> None:
        self.check()

    def test_fallback(self) -> None:
        self.patch(compat, "HAS_DEFERRED_INTERNALS", False)
        self.patch(compat, "succeeded", compat._public_succeeded)
        self.check()

    def test_awaiting_a_quietly_fired_deferred(self) -> None:
        d: Deferred[str] = Deferred()

        async def wait() -> str:
            return await d

        result = defer.ensureDeferred(wait())
        self.assertNoResult(result)
        e: Deferred[str] = Deferred()
        compat.fire_quietly(e, "x")

        async def wait_fired() -> str:
            return await e

        self.assertEqual(self.successResultOf(defer.ensureDeferred(wait_fired())), "x")
        d.callback("y")
        self.assertEqual(self.successResultOf(result), "y")


class FiredValueTests(SynchronousTestCase):
    """fired_value reads a fired Deferred's value, on this Twisted, and declines otherwise."""

    def test_fast_path_taken(self) -> None:
        self.assertTrue(compat.HAS_DEFERRED_INTERNALS)
        self.assertIs(compat._fired_value, compat._fast_fired_value)
        self.assertEqual(compat.fired_value(defer.succeed(3)), (True, 3))

    def test_declines(self) -> None:
        self.assertEqual(compat.fired_value(Deferred()), (False, None))
        failed: Deferred[int] = defer.fail(ValueError("no"))
        self.assertEqual(compat.fired_value(failed), (False, None))
        self.failureResultOf(failed, ValueError)
        chained: Deferred[int] = defer.succeed(1)
        chained.addCallback(lambda _: Deferred())  # now waits on another Deferred
        self.assertEqual(compat.fired_value(chained), (False, None))
        paused: Deferred[int] = defer.succeed(2)
        paused.pause()
        self.assertEqual(compat.fired_value(paused), (False, None))
        paused.unpause()
        self.assertEqual(compat.fired_value(paused), (True, 2))

    def test_fallback(self) -> None:
        self.assertEqual(compat._public_fired_value(defer.succeed(3)), (False, None))


class _Keep(Protocol):
    def connectionMade(self) -> None:
        self.factory.made.callback(self)  # type: ignore[attr-defined]


class LiveConnectionTests(TestCase):
    """On a real loopback connection the eager path is found and marking works."""

    @defer.inlineCallbacks
    def test_eager_path_and_write_disconnected(self) -> Any:
        factory = ServerFactory()
        factory.protocol = _Keep
        factory.made = Deferred()  # type: ignore[attr-defined]
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = socket.create_connection(("127.0.0.1", port.getHost().port))
        self.addCleanup(client.close)
        proto = yield factory.made  # type: ignore[attr-defined]
        transport = proto.transport
        self.assertIsInstance(transport, tcp.Server)
        self.assertTrue(compat.eager_writes_supported(transport))
        self.assertIs(raw_tcp_connection(transport), transport)
        self.assertEqual(compat.send_now(transport, b"hi"), 2)
        self.assertIs(compat.tls_client_default(transport), False)
        self.assertTrue(compat.mark_write_disconnected(transport))
        self.assertIs(transport._writeDisconnected, True)
        self.assertEqual(compat.send_now(transport, b"no"), 0)
        transport.abortConnection()

    @defer.inlineCallbacks
    def test_adopt_shared_unix_port(self) -> Any:
        path = os.path.join(tempfile.mkdtemp(), "s.sock")
        owner = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        owner.bind(path)
        owner.listen(5)
        os.chmod(path, 0o640)
        owner.setblocking(False)
        fd = os.dup(owner.fileno())
        self.addCleanup(owner.close)
        factory = ServerFactory()
        factory.protocol = _Keep
        factory.made = Deferred()  # type: ignore[attr-defined]
        port = compat.adopt_shared_unix_port(reactor, fd, factory, 333)
        os.close(fd)
        self.assertEqual(port.backlog, 333)  # type: ignore[attr-defined]
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(client.close)
        client.connect(path)
        proto = yield factory.made  # type: ignore[attr-defined]
        proto.transport.loseConnection()
        yield port.stopListening()
        # The file is the owner's: still there, mode unchanged.
        self.assertTrue(stat.S_ISSOCK(os.stat(path).st_mode))
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o640)


class AcceptOnePerWakeupTests(TestCase):
    """A shared listening port accepts one connection per wake-up, and still serves."""

    def test_flag(self) -> None:
        self.assertTrue(compat.HAS_NUMBER_ACCEPTS)

    @defer.inlineCallbacks
    def test_pinned_to_one_and_still_accepting(self) -> Any:
        factory = ServerFactory()
        factory.protocol = _Keep
        factory.made = Deferred()  # type: ignore[attr-defined]
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        self.assertTrue(compat.accept_one_per_wakeup(port))
        self.assertTrue(compat.accept_one_per_wakeup(port))  # twice: no second subclass
        self.assertIsInstance(port, tcp.Port)
        self.assertIs(type(port).__mro__[1], tcp.Port)
        port.numberAccepts = 120  # what doRead does after a full batch
        self.assertEqual(port.numberAccepts, 1)
        client = socket.create_connection(("127.0.0.1", port.getHost().port))
        self.addCleanup(client.close)
        proto = yield factory.made  # type: ignore[attr-defined]
        proto.transport.loseConnection()

    def test_other_ports_untouched(self) -> None:
        self.assertFalse(compat.accept_one_per_wakeup(object()))


def _twisted_private_names() -> set[str]:
    """Private attribute names of the Twisted classes we build on (camelCase ones, and more)."""
    classes: list[type] = [
        Deferred, tcp.Connection, tcp.Server, tcp.Client, tcp.Port, unix.Port, unix.Server,
        abstract.FileDescriptor, TLSMemoryBIOProtocol, ProtocolWrapper, WrappingFactory,
        Factory, Protocol, DelayedCall,
    ]  # fmt: skip
    names: set[str] = set()
    for cls in classes:
        for klass in cls.__mro__:
            if not klass.__module__.startswith("twisted."):
                continue
            for name in vars(klass):
                names.add(name)
            for member in vars(klass).values():
                code = getattr(member, "__code__", None)
                if code is not None:
                    names.update(code.co_names)
    private = {n for n in names if n.startswith("_") and not n.startswith("__")}
    # Ours are snake_case (PEP 8): a camelCase private name is Twisted's.
    camel = {n for n in private if re.search(r"[a-z][A-Z]", n)}
    explicit = {
        "_callbacks", "_canceller", "_chainedTo", "_runningCallbacks", "_debugInfo",
        "_suppressAlreadyCalled", "_preexistingSocket", "_bindPath",
    }  # fmt: skip
    return camel | explicit


#: Deferred attributes that are not underscored yet are internals.
_DEFERRED_INTERNALS = re.compile(r"\b(?:d|deferred|waiter|op|result_d)\.(?:result|paused)\b")

#: Known uses outside the compat module, being removed elsewhere: {path: names}.
#: Each entry must still be true (so a stale one is noticed and deleted).
_KNOWN: dict[str, set[str]] = {}


class SSLEndpointOptionsTests(SynchronousTestCase):
    def test_options_of_a_parsed_ssl_endpoint(self) -> None:
        from twisted.internet.endpoints import serverFromString
        from twisted.internet.ssl import CertificateOptions

        from netproto_twisted.core.tls import ensure_dev_certificate, tls_server_endpoint_args

        cert, key = ensure_dev_certificate(self.mktemp())
        args = tls_server_endpoint_args(cert, key)
        endpoint = serverFromString(reactor, f"ssl:0:interface=127.0.0.1:{args}")
        self.assertIsInstance(compat.ssl_endpoint_options(endpoint), CertificateOptions)
        plain = serverFromString(reactor, "tcp:0:interface=127.0.0.1")
        self.assertIsNone(compat.ssl_endpoint_options(plain))


class NoPrivateNamesOutsideCompatTests(SynchronousTestCase):
    """No module but core/_twisted_compat.py names a private attribute of Twisted."""

    def test_names_collected(self) -> None:
        names = _twisted_private_names()
        for expected in ("_tempDataBuffer", "_writeDisconnected", "_tlsClientDefault",
                         "_callbacks", "_fromListeningDescriptor", "_bindPath"):  # fmt: skip
            self.assertIn(expected, names)

    def test_grep_package(self) -> None:
        names = _twisted_private_names()
        pattern = re.compile(r"""(?:\.|["'])(_[A-Za-z][A-Za-z0-9_]*)\b""")
        found: dict[str, set[str]] = {}
        for path in sorted(PACKAGE.rglob("*.py")):
            if path == COMPAT:
                continue
            text = path.read_text(encoding="utf-8")
            hits = {m.group(1) for m in pattern.finditer(text) if m.group(1) in names}
            for m in _DEFERRED_INTERNALS.finditer(text):
                hits.add("." + m.group(0).rsplit(".", 1)[1])
            if hits:
                found[path.relative_to(PACKAGE).as_posix()] = hits
        for rel, expected in _KNOWN.items():
            self.assertEqual(found.pop(rel, set()), expected, f"stale _KNOWN entry for {rel}")
        self.assertEqual(found, {})

    def test_grep_finds_a_use(self) -> None:
        """The grep is not blind: the compat module itself is full of hits."""
        names = _twisted_private_names()
        text = COMPAT.read_text(encoding="utf-8")
        for name in ("_tempDataBuffer", "_tlsClientDefault", "_callbacks",
                     "_fromListeningDescriptor"):  # fmt: skip
            self.assertIn(name, names)
            self.assertIn("." + name, text)
        self.assertTrue(inspect.getsource(compat))
