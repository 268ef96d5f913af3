"""``twistd -n netproto-socket`` as users run it: the stdlib docs' examples, built-ins, errors."""

from __future__ import annotations

import re
import resource
import selectors
import shutil
import signal
import socket
import ssl
import tempfile
import time
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from netproto_twisted.core.tls import ensure_dev_certificate
from tests.twistd import Daemon, run_twistd

TIMEOUT = 10.0


def _ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


class _DaemonCase(SynchronousTestCase):
    def start(self, *args: str) -> Daemon:
        """Start ``twistd -n netproto-socket ARGS`` in a temporary directory."""
        cwd = Path(self.mktemp())
        cwd.mkdir(parents=True)
        self.cwd = cwd
        daemon = Daemon(["netproto-socket", *args], cwd)
        self.addCleanup(daemon.stop)
        return daemon

    def port(self, daemon: Daemon, kind: str = "tcp", host: str = r"127\.0\.0\.1") -> int:
        """Wait for ``socket listening on KIND HOST:PORT`` and return PORT."""
        m = daemon.wait_for(rf"socket listening on {kind} {host}:(\d+)", TIMEOUT)
        return int(m.group(1))


# The clients of the socketserver documentation, as the docs write them (returning
# what they print).
def docs_tcp_client(HOST: str, PORT: int, data: str) -> str:
    # Create a socket (SOCK_STREAM means a TCP socket)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        # Connect to server and send data
        sock.connect((HOST, PORT))
        sock.sendall(bytes(data + "\n", "utf-8"))

        # Receive data from the server and shut down
        received = str(sock.recv(1024), "utf-8")
    return received


def docs_udp_client(HOST: str, PORT: int, data: str) -> str:
    # SOCK_DGRAM is the socket type to use for UDP sockets
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(TIMEOUT)

    # As you can see, there is no connect() call; UDP has no connections.
    # Instead, data is directly sent to the recipient via sendto().
    sock.sendto(bytes(data + "\n", "utf-8"), (HOST, PORT))
    received = str(sock.recv(1024), "utf-8")
    sock.close()
    return received


def docs_mixin_client(ip: str, port: int, message: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect((ip, port))
        sock.sendall(bytes(message, "ascii"))
        response = str(sock.recv(1024), "ascii")
    return response


class StdlibExamplesTests(_DaemonCase):
    """The handler classes of the socketserver docs, verbatim, driven by the docs' clients."""

    def test_tcp_example(self) -> None:
        daemon = self.start(
            "--handler", "tests.sockserv.stdlib_examples:MyTCPHandler",
            "--listen", "tcp:0:interface=127.0.0.1",
        )  # fmt: skip
        port = self.port(daemon)
        self.assertEqual(
            docs_tcp_client("127.0.0.1", port, "hello world with TCP"), "HELLO WORLD WITH TCP"
        )
        daemon.wait_for(r"127\.0\.0\.1 wrote:", TIMEOUT)
        daemon.wait_for(r"b'hello world with TCP'", TIMEOUT)

    def test_stream_example(self) -> None:
        daemon = self.start(
            "--handler", "tests.sockserv.stdlib_examples:MyStreamTCPHandler",
            "--listen", "tcp:0:interface=127.0.0.1",
        )  # fmt: skip
        port = self.port(daemon)
        self.assertEqual(docs_tcp_client("127.0.0.1", port, "streams too"), "STREAMS TOO")
        self.assertEqual(docs_tcp_client("127.0.0.1", port, "again"), "AGAIN")

    def test_udp_example(self) -> None:
        daemon = self.start(
            "--handler", "tests.sockserv.stdlib_examples:MyUDPHandler",
            "--listen", "udp:0:interface=127.0.0.1",
        )  # fmt: skip
        port = self.port(daemon, "udp")
        self.assertEqual(
            docs_udp_client("127.0.0.1", port, "hello world with UDP"), "HELLO WORLD WITH UDP"
        )
        daemon.wait_for(r"b'hello world with UDP'", TIMEOUT)

    def test_asynchronous_mixins_example(self) -> None:
        daemon = self.start(
            "--handler", "tests.sockserv.stdlib_examples:ThreadedTCPRequestHandler",
            "--listen", "tcp:0:interface=127.0.0.1",
            "--threads", "3",
        )  # fmt: skip
        port = self.port(daemon)
        for n in (1, 2, 3):
            response = docs_mixin_client("127.0.0.1", port, f"Hello World {n}")
            self.assertRegex(response, rf"^PoolThread-socket-handlers-\d+: Hello World {n}$")


class BuiltinHandlerTests(_DaemonCase):
    """echo, discard and daytime on every kind of endpoint."""

    def test_echo_everywhere(self) -> None:
        cert, key = ensure_dev_certificate(Path(self.mktemp()))
        short_dir = tempfile.mkdtemp(prefix="sockserv-", dir="/tmp")
        self.addCleanup(shutil.rmtree, short_dir, True)
        sock_path = Path(short_dir) / "echo.sock"  # AF_UNIX paths must stay short
        args = [
            "--handler", "echo",
            "--listen", "tcp:0:interface=127.0.0.1",
            "--listen", f"unix:{sock_path}",
            "--listen", f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}",
            "--listen", "udp:0:interface=127.0.0.1",
        ]  # fmt: skip
        ipv6 = _ipv6_available()
        if ipv6:
            args += ["--listen", r"tcp6:0:interface=\:\:1", "--listen", "udp:0:interface=::1"]
        daemon = self.start(*args)
        tcp_port = self.port(daemon)
        ssl_port = self.port(daemon, "ssl")
        udp_port = self.port(daemon, "udp")
        daemon.wait_for(rf"socket listening on unix {re.escape(str(sock_path))}", TIMEOUT)

        def round_trip(sock: socket.socket, payload: bytes) -> bytes:
            with sock:
                sock.settimeout(TIMEOUT)
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)
                out = b""
                while data := sock.recv(65536):
                    out += data
                return out

        big = bytes(range(256)) * 4096  # 1 MiB, echoed after a half-close
        self.assertEqual(round_trip(socket.create_connection(("127.0.0.1", tcp_port)), big), big)
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        unix.connect(str(sock_path))
        self.assertEqual(round_trip(unix, b"over unix\n"), b"over unix\n")

        ctx = ssl.create_default_context(cafile=str(cert))
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        with ctx.wrap_socket(
            socket.create_connection(("127.0.0.1", ssl_port), timeout=TIMEOUT),
            server_hostname="localhost",
        ) as tls:
            tls.sendall(b"over tls\n")
            self.assertEqual(tls.recv(100), b"over tls\n")

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(TIMEOUT)
            udp.sendto(b"datagram", ("127.0.0.1", udp_port))
            self.assertEqual(udp.recvfrom(100), (b"datagram", ("127.0.0.1", udp_port)))

        if ipv6:
            tcp6_port = self.port(daemon, "tcp6", r"\[::1\]")
            udp6_port = self.port(daemon, "udp", r"\[::1\]")
            conn6 = socket.create_connection(("::1", tcp6_port))
            self.assertEqual(round_trip(conn6, b"over tcp6\n"), b"over tcp6\n")
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as udp6:
                udp6.settimeout(TIMEOUT)
                udp6.sendto(b"v6 datagram", ("::1", udp6_port))
                self.assertEqual(udp6.recv(100), b"v6 datagram")

    def test_daytime_tcp_and_udp(self) -> None:
        daemon = self.start(
            "--handler", "daytime",
            "--listen", "tcp:0:interface=127.0.0.1",
            "--listen", "udp:0:interface=127.0.0.1",
        )  # fmt: skip
        tcp_port = self.port(daemon)
        udp_port = self.port(daemon, "udp")
        with socket.create_connection(("127.0.0.1", tcp_port), timeout=TIMEOUT) as s:
            line = b""
            while data := s.recv(100):
                line += data
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(TIMEOUT)
            udp.sendto(b"", ("127.0.0.1", udp_port))
            dgram = udp.recv(100)
        rx = rb"^[A-Z][a-z]+day, [A-Z][a-z]+ \d{1,2}, \d{4} \d\d:\d\d:\d\d-UTC\r\n$"
        for text in (line, dgram):
            self.assertRegex(text, rx)
            stamp = time.strptime(text.decode().strip(), "%A, %B %d, %Y %H:%M:%S-UTC")
            self.assertLess(abs(time.mktime(stamp) - time.mktime(time.gmtime())), 300)

    def test_discard_tcp_and_udp(self) -> None:
        daemon = self.start(
            "--handler", "discard",
            "--listen", "tcp:0:interface=127.0.0.1",
            "--listen", "udp:0:interface=127.0.0.1",
        )  # fmt: skip
        port = self.port(daemon)
        self.port(daemon, "udp")
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
            s.sendall(b"x" * 1_000_000)
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(s.recv(100), b"")


class OptionsErrorTests(SynchronousTestCase):
    """A bad --handler or --listen: one clear line, no traceback, non-zero exit."""

    def check(self, args: list[str], expected: str) -> None:
        cwd = Path(self.mktemp())
        cwd.mkdir(parents=True)
        result = run_twistd(["netproto-socket", *args], cwd)
        self.assertNotEqual(result.returncode, 0)
        self.assertNotIn("Traceback", result.stderr + result.stdout)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertTrue(lines[0].startswith("netproto-socket: "), lines[0])
        self.assertIn(expected, lines[0])

    def test_bad_handlers(self) -> None:
        listen = ["--listen", "tcp:0:interface=127.0.0.1"]
        self.check(["--handler", "no_such_module_xyz:Handler", *listen], "no module named")
        self.check(["--handler", "tests.sockserv.stdlib_examples:Nope", *listen], "no attribute")
        self.check(
            ["--handler", "tests.sockserv.sample_handlers:NotAHandler", *listen],
            "is not a request handler class",
        )
        self.check(["--handler", "nonsense", *listen], "expected one of")
        self.check(listen, "--handler is required")

    def test_bad_listen(self) -> None:
        self.check(["--handler", "echo", "--listen", "carrier-pigeon:1"], "unsupported endpoint")
        self.check(["--handler", "echo", "--listen", "udp:notaport"], "udp:PORT")
        self.check(["--handler", "echo", "--listen", "tcp:http-alt-xyz"], "bad endpoint")
        self.check(["--handler", "echo"], "at least one endpoint")
        self.check(["--handler", "echo", "--listen", "tcp:0", "--threads", "0"], "--threads")


class PortInUseTests(SynchronousTestCase):
    """A port that cannot be bound ends the daemon with one line and exit status 1."""

    def test_port_in_use(self) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            cwd = Path(self.mktemp())
            cwd.mkdir(parents=True)
            result = run_twistd(
                ["netproto-socket", "--handler", "echo",
                 "--listen", f"tcp:{port}:interface=127.0.0.1"],
                cwd,
            )  # fmt: skip
        self.assertEqual(result.returncode, 1)
        output = result.stdout + result.stderr
        self.assertNotIn("Traceback", output)
        lines = [line for line in output.splitlines() if "netproto-socket:" in line]
        self.assertEqual(len(lines), 1, output)
        self.assertIn("Address already in use", lines[0])


class PolicyAndRobustnessTests(_DaemonCase):
    """Access control, limits, handler exceptions and a clean SIGTERM under twistd."""

    def test_deny_closes_before_the_handler(self) -> None:
        daemon = self.start(
            "--handler", "tests.sockserv.stdlib_examples:MyTCPHandler",
            "--listen", "tcp:0:interface=127.0.0.1",
            "--deny", "127.0.0.0/8",
        )  # fmt: skip
        port = self.port(daemon)
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
            try:
                s.sendall(b"let me in\n")
                self.assertEqual(s.recv(100), b"")
            except ConnectionResetError:
                pass
        daemon.wait_for(r"refused 127\.0\.0\.1", TIMEOUT)
        self.assertNotIn("wrote:", daemon.output())

    def test_max_connections(self) -> None:
        daemon = self.start(
            "--handler", "echo", "--listen", "tcp:0:interface=127.0.0.1",
            "--max-connections", "2",
        )  # fmt: skip
        port = self.port(daemon)
        held = [socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) for _ in range(2)]
        for s in held:
            s.sendall(b"ping")
            self.assertEqual(s.recv(10), b"ping")
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as third:
            self.assertEqual(third.recv(10), b"")
        for s in held:
            s.close()

    def test_handler_exception_logged_daemon_survives_and_stops_cleanly(self) -> None:
        daemon = self.start(
            "--handler", "tests.sockserv.sample_handlers:Boom",
            "--listen", "tcp:0:interface=127.0.0.1",
        )  # fmt: skip
        port = self.port(daemon)
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
                s.sendall(b"go\n")
                self.assertEqual(s.recv(100), b"")
        daemon.wait_for(r"ZeroDivisionError: boom in handler", TIMEOUT)
        # A connection whose handler thread is blocked in recv must not stall SIGTERM.
        idle = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.addCleanup(idle.close)
        started = time.monotonic()
        # twistd re-raises the signal once it has shut down cleanly.
        self.assertIn(daemon.stop(), (0, -signal.SIGTERM))
        self.assertLess(time.monotonic() - started, 8)
        self.assertIn("Server Shut Down.", daemon.output())
        self.assertNotIn("ConnectionAbortedError", daemon.output())


def _rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` from /proc/<pid>/status (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


#: The RSS bound for 1,000 open echo connections: an idle daemon is ~40 MB (Python,
#: Twisted, cryptography); one connection costs a few KiB (transport, guard wrapper,
#: protocol, AsyncSocket, a suspended coroutine and its Deferred; reads pause above
#: 256 KiB buffered, which an echo never reaches). 150 MB leaves room for allocator
#: slack yet fails if a connection held even ~100 KiB.
RSS_LIMIT = 150 * 1024 * 1024


class ThousandConnectionsTests(_DaemonCase):
    """1,000 concurrent connections to the async echo handler with bounded memory."""

    timeout = 60

    def test_thousand_connections(self) -> None:
        n = 1000
        if not Path("/proc/self/status").exists():
            raise SkipTest("needs /proc to read the daemon's RSS")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = n + 200
        if soft < need:
            if hard != resource.RLIM_INFINITY and hard < need:
                raise SkipTest(f"RLIMIT_NOFILE hard limit {hard} < {need}")
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        daemon = self.start(
            "--handler", "echo", "--listen", "tcp:0:interface=127.0.0.1:backlog=1024",
            "--max-connections", "2000", "--max-per-ip", "2000",
        )  # fmt: skip
        port = self.port(daemon)
        idle_rss = _rss_bytes(daemon.proc.pid)

        sel = selectors.DefaultSelector()
        self.addCleanup(sel.close)
        socks: list[socket.socket] = []
        got: dict[socket.socket, bytes] = {}
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.addCleanup(s.close)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            socks.append(s)
            sel.register(s, selectors.EVENT_WRITE)
        expect = {s: b"line %d\n" % i for i, s in enumerate(socks)}
        done = 0
        deadline = time.monotonic() + 40
        while done < n and time.monotonic() < deadline:
            for key, events in sel.select(timeout=1.0):
                s = key.fileobj
                assert isinstance(s, socket.socket)
                if events & selectors.EVENT_WRITE:
                    s.send(expect[s])  # a few bytes: the kernel takes them at once
                    got[s] = b""
                    sel.modify(s, selectors.EVENT_READ)
                    continue
                data = s.recv(100)
                self.assertTrue(data, "the daemon closed a connection")
                got[s] += data
                if got[s] == expect[s]:
                    done += 1
                    sel.unregister(s)
        self.assertEqual(done, n, f"only {done} of {n} echoes came back in time")
        peak_rss = _rss_bytes(daemon.proc.pid)
        self.assertLess(
            peak_rss,
            RSS_LIMIT,
            f"daemon RSS {peak_rss / 2**20:.1f} MiB with {n} connections"
            f" (idle {idle_rss / 2**20:.1f} MiB)",
        )
        self.assertLess(peak_rss - idle_rss, 50 * 1024 * n, "more than 50 KiB per connection")
        # Every connection is still open and usable: one more round on the first 10.
        for s in socks[:10]:
            s.setblocking(True)
            s.settimeout(TIMEOUT)
            s.sendall(b"again\n")
            self.assertEqual(s.recv(100), b"again\n")
        print(
            f"\n1000 connections: daemon RSS {peak_rss / 2**20:.1f} MiB"
            f" (idle {idle_rss / 2**20:.1f} MiB)"
        )
