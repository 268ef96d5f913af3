"""FTP server benchmark: our server against pyftpdlib, vsftpd and Twisted's FTP server.

One run starts each server on loopback over its own directory and drives
the same loads at it with the stdlib's :mod:`ftplib` as the client:

- ``RETR``: one 256 MiB file (in the page cache), binary, passive; MB/s;
- ``STOR``: 256 MiB uploaded, binary, passive; MB/s (the file is removed
  after each run);
- ``100 x login+RETR 1 MB``: 100 clients at once (threads), each logging
  in, retrieving a 1 MB file and quitting; wall time in seconds;
- ``FTPS RETR``: the 256 MiB file over explicit FTPS with ``PROT P``
  (``ftplib.FTP_TLS`` whose data connection resumes the control session, as
  curl's does); our server and pyftpdlib's ``TLS_FTPHandler`` only; MB/s.

``--loads retr,stor,clients,ftps-retr`` picks rows (default all).  Each
figure comes with ``others %``: the CPU the rest of the machine took during
that measurement (``/proc/stat`` busy time less the server's and this
process's), in % of one CPU -- on a shared machine, rows with a high
``others %`` measure scheduling more than code.

Servers (each in a subprocess of its own):

- ``netproto``: :class:`~netproto_twisted.ftp.server.FTPServerFactory`
  (sendfile for RETR); its password file uses 4,096 PBKDF2 iterations, as
  the test helper does (the daemon's default of 100,000 costs ~25 ms of
  CPU per login: 100 logins would then measure PBKDF2, which the others do
  not run -- pyftpdlib's and Twisted's test authorizers compare plaintext,
  vsftpd serves anonymous);
- ``netproto-reactor`` (only with ``--only``): the same with the receiving
  thread (:mod:`netproto_twisted.core.recvfile`) turned off -- uploads read
  by the reactor, as before -- to show what it brings within one run; ``netproto-splice``: the
  receiving thread with ``os.splice`` instead of ``recv_into`` and ``os.write``;
  ``netproto-tlsreactor``: PROT P downloads encrypted by Twisted's TLS layer
  on the reactor thread, as before :mod:`netproto_twisted.core.tls_sendfile`;
- ``pyftpdlib``: ``FTPHandler`` with ``DummyAuthorizer`` (sendfile on);
- ``vsftpd``: anonymous as the Debian ``ftp`` user (needs root and the
  ``ftp`` user; skipped otherwise), with ``up/`` writable;
- ``twisted.protocols.ftp``: ``FTPFactory`` over ``FTPRealm`` with an
  in-memory password database.

Rows are interleaved (A1 B1 C1 D1 A2 ...); the table shows medians and the
ratio to pyftpdlib.  Absolute numbers on a shared machine are noise; ratios
within one run are the figure.  Run from a checkout::

    python bench/ftp.py                  # 3 runs per row
    python bench/ftp.py --quick          # 64 MiB, 20 clients, 1 run
"""

from __future__ import annotations

import argparse
import ftplib
import io
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.harness import read_busy_seconds, read_cpu_seconds  # noqa: E402
from netproto_twisted.core.tls import ensure_dev_certificate  # noqa: E402

MB = 1024 * 1024
USER, PASSWORD = "bench", "bench-password"

_NETPROTO = r"""
import sys
sys.path.insert(0, sys.argv[3])
from twisted.internet import reactor
from netproto_twisted.core.access import LoginDelay
from netproto_twisted.core.login_cache import VerifiedPasswordCache
from netproto_twisted.core.passwords import PasswordFile, thread_runner
from netproto_twisted.core.sasl_exchange import Authenticator
from netproto_twisted.ftp.server import FTPServerFactory, FTPSettings
from netproto_twisted.ftp.users import UserTable
from netproto_twisted.core.tls import server_context
from netproto_twisted.core.tls_sessions import resumable_server_options
root, port, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[4], sys.argv[5]
if sys.argv[6] == "reactor":  # the path before: uploads read by the reactor
    from netproto_twisted.core import recvfile
    recvfile.MAX_THREADS = 0
elif sys.argv[6] == "splice":  # the receiving thread moves the bytes with os.splice
    from netproto_twisted.core import recvfile
    recvfile.USE_SPLICE = True
elif sys.argv[6] == "tlsreactor":  # the path before: PROT P downloads encrypted by the reactor
    from netproto_twisted.core import tls_sendfile
    tls_sendfile.MAX_THREADS = 0
passwords = PasswordFile(root + ".users", iterations=4096)
passwords.add("bench", "bench-password")
reactor.suggestThreadPoolSize(20)
auth = Authenticator.for_password_file(  # as the daemon builds it: the login cache on
    passwords, thread_runner(reactor, reactor.getThreadPool()),
    LoginDelay(reactor, max_waiting=1000), allow_insecure=True,
    cache=VerifiedPasswordCache(300))
factory = FTPServerFactory(reactor, UserTable(root, {"bench": (".", "elradfmw")}), auth,
                           FTPSettings(allow_insecure_auth=True, command_rate=None),
                           tls=resumable_server_options(server_context(cert, key)))
reactor.listenTCP(port, factory, 1024, interface="127.0.0.1")
reactor.run()
"""

_PYFTPDLIB = r"""
import sys, logging
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
from pyftpdlib.servers import FTPServer
logging.disable(logging.CRITICAL)
root, port, tls_port, both = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
a = DummyAuthorizer(); a.add_user("bench", "bench-password", root, perm="elradfmw")
FTPHandler.authorizer = a
TLS_FTPHandler.authorizer = a
TLS_FTPHandler.certfile = both
tls_server = FTPServer(("127.0.0.1", tls_port), TLS_FTPHandler)  # same IOLoop as the other
server = FTPServer(("127.0.0.1", port), FTPHandler)
server.max_cons = 2000
server.serve_forever()
"""

_TWISTED = r"""
import sys
from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet import reactor
from twisted.protocols.ftp import FTPFactory, FTPRealm
from twisted.python import filepath
root, port = sys.argv[1], int(sys.argv[2])
class Realm(FTPRealm):
    def getHomeDirectory(self, avatarId):
        return filepath.FilePath(root)  # whatever form the avatar id takes
realm = Realm(root)
checker = InMemoryUsernamePasswordDatabaseDontUse()
checker.addUser(b"bench", b"bench-password")
checker.addUser("bench", "bench-password")
factory = FTPFactory(Portal(realm, [checker]))
reactor.listenTCP(port, factory, 1024, interface="127.0.0.1")
reactor.run()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)  # a benchmark, not a test: polling a starting server is fine
    raise RuntimeError(f"nothing listens on {port}")


class Server:
    """One server process over ``base/<name>``: where it listens, who logs in, where files go."""

    def __init__(self, name: str, base: Path) -> None:
        self.name = name
        self.port = free_port()
        self.tls_port = self.port  # explicit FTPS: where AUTH TLS is taken
        self.dir = base / name
        self.user, self.password = USER, PASSWORD
        self.upload = "up.bin"
        if name == "twisted":
            self.dir = base / "twisted-home" / USER  # FTPRealm: home = userHome/name
        self.dir.mkdir(parents=True)
        files = self.dir
        if name == "vsftpd":
            files.chmod(0o555)
            (files / "up").mkdir()
            (files / "up").chmod(0o777)
            self.user, self.password = "anonymous", ""
            self.upload = "up/up.bin"
        self.files = files

    def start(self) -> None:
        py = sys.executable
        argv: list[str]
        cert, key = ensure_dev_certificate(self.dir.parent / "tls")
        if self.name.startswith("netproto"):
            mode = self.name.partition("-")[2] or "default"
            argv = [py, "-c", _NETPROTO, str(self.dir), str(self.port), str(REPO), str(cert),
                    str(key), mode]  # fmt: skip
        elif self.name == "pyftpdlib":
            both = self.dir.parent / "pyftpdlib.pem"
            both.write_bytes(cert.read_bytes() + key.read_bytes())
            self.tls_port = free_port()
            argv = [py, "-c", _PYFTPDLIB, str(self.dir), str(self.port), str(self.tls_port),
                    str(both)]  # fmt: skip
        elif self.name == "twisted":
            argv = [py, "-c", _TWISTED, str(self.dir), str(self.port)]
        else:
            conf = self.dir.parent / "vsftpd.conf"
            empty = self.dir.parent / "vsftpd-empty"
            empty.mkdir(exist_ok=True)
            conf.write_text("\n".join([
                "listen=YES", "listen_ipv6=NO", "listen_address=127.0.0.1",
                f"listen_port={self.port}", "background=NO", "anonymous_enable=YES",
                "local_enable=NO", f"anon_root={self.dir}", "ftp_username=ftp",
                "no_anon_password=YES", "write_enable=YES", "anon_upload_enable=YES",
                "anon_other_write_enable=YES", "seccomp_sandbox=NO", "isolate=NO",
                "isolate_network=NO", f"secure_chroot_dir={empty}", "max_clients=2000",
                "max_per_ip=2000", "xferlog_enable=NO", "",
            ]))  # fmt: skip
            argv = [shutil.which("vsftpd") or "/usr/sbin/vsftpd", str(conf)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)
        wait_port(self.tls_port, self.proc)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)

    def login(self) -> ftplib.FTP:
        f = ftplib.FTP(timeout=30)
        f.connect("127.0.0.1", self.port)
        f.login(self.user, self.password)
        return f

    def login_tls(self) -> ftplib.FTP_TLS:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        f = _ReusingFTPTLS(context=context, timeout=30)
        f.connect("127.0.0.1", self.tls_port)
        f.login(self.user, self.password)  # AUTH TLS first
        f.prot_p()
        return f


class _ReusingFTPTLS(ftplib.FTP_TLS):
    """FTP_TLS whose data connections resume the control session (as curl's and lftp's do)."""

    def ntransfercmd(
        self, cmd: str, rest: int | str | None = None
    ) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]
            session = getattr(self.sock, "session", None)
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
        return conn, size


def available(name: str) -> str | None:
    """Why ``name`` cannot run here, or None."""
    if name == "vsftpd":
        if not (shutil.which("vsftpd") or os.path.exists("/usr/sbin/vsftpd")):
            return "vsftpd not installed"
        if os.geteuid() != 0:
            return "vsftpd needs root"
        try:
            import pwd

            pwd.getpwnam("ftp")
        except KeyError:
            return "no 'ftp' user"
    if name == "pyftpdlib":
        try:
            import pyftpdlib  # noqa: F401
        except ImportError:
            return "pyftpdlib not installed"
    return None


class _Zeros(io.RawIOBase):
    """``size`` bytes of one repeated block, without holding them (the upload source)."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.block = b"\x5a" * MB

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = min(self.left, MB if n < 0 else n)
        self.left -= n
        return self.block[:n]


def retr_mbps(server: Server, size: int, tls: bool = False) -> float:
    f = server.login_tls() if tls else server.login()
    got = [0]

    def count(block: bytes) -> None:
        got[0] += len(block)

    start = time.perf_counter()
    f.retrbinary("RETR big.bin", count, blocksize=MB)
    elapsed = time.perf_counter() - start
    f.quit()
    assert got[0] == size, (server.name, got[0])
    return size / MB / elapsed


def ftps_retr_mbps(server: Server, size: int) -> float:
    return retr_mbps(server, size, tls=True)


def measured(fn: object, server: Server, arg: int) -> tuple[float, float, float]:
    """``fn(server, arg)``, the others' CPU % meanwhile and the server's CPU seconds."""
    busy0, srv0, own0 = read_busy_seconds(), read_cpu_seconds(server.proc.pid), time.process_time()
    start = time.perf_counter()
    value = fn(server, arg)  # type: ignore[operator]
    elapsed = time.perf_counter() - start
    srv = read_cpu_seconds(server.proc.pid) - srv0
    others = read_busy_seconds() - busy0 - srv - (time.process_time() - own0)
    return value, max(0.0, 100.0 * others / elapsed), srv


def stor_mbps(server: Server, size: int) -> float:
    f = server.login()
    start = time.perf_counter()
    f.storbinary("STOR " + server.upload, _Zeros(size), blocksize=MB)
    elapsed = time.perf_counter() - start
    f.quit()
    target = server.files / server.upload
    actual = target.stat().st_size
    target.unlink()
    assert actual == size, (server.name, actual)
    return size / MB / elapsed


def many_clients_seconds(server: Server, clients: int) -> float:
    errors: list[BaseException] = []
    barrier = threading.Barrier(clients + 1)

    def one() -> None:
        try:
            barrier.wait()
            f = server.login()
            got = bytearray()
            f.retrbinary("RETR small.bin", got.extend, blocksize=256 * 1024)
            f.quit()
            assert len(got) == 1_000_000
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:  # reported, and the row shows no figure for this run
        print(f"{server.name}: {len(errors)} of {clients} clients failed: {errors[0]!r}")
        return float("nan")
    return elapsed


def _status_mb(pid: int, key: str) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_logins(base: Path, count: int) -> None:
    """Our server's RSS before, while ``count`` sessions are logged in at once, and its peak."""
    server = Server("netproto", base)
    server.start()
    try:
        server.login().quit()
        before = _status_mb(server.proc.pid, "VmRSS")
        sessions: list[ftplib.FTP] = []
        lock = threading.Lock()
        barrier = threading.Barrier(count + 1)

        def one() -> None:
            barrier.wait()
            f = server.login()
            with lock:
                sessions.append(f)

        threads = [threading.Thread(target=one) for _ in range(count)]
        for t in threads:
            t.start()
        barrier.wait()
        start = time.perf_counter()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        during = _status_mb(server.proc.pid, "VmRSS")
        for f in sessions:
            f.quit()
        peak = _status_mb(server.proc.pid, "VmHWM")
        print(f"{len(sessions)} of {count} logged in at once in {elapsed:.2f} s; server RSS "
              f"{before:.1f} MB before, {during:.1f} MB with them open, peak {peak:.1f} MB "
              f"(+{peak - before:.1f} MB)")  # fmt: skip
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="64 MiB, 20 clients, 1 run")
    parser.add_argument("--only", action="append", default=[], help="a server (repeatable)")
    parser.add_argument("--loads", default="retr,stor,clients,ftps-retr",
                        help="rows to run, comma-separated: retr, stor, clients, ftps-retr")
    parser.add_argument("--rss-logins", type=int, default=0, metavar="N",
                        help="only: our server's RSS growth over N simultaneous logins")
    args = parser.parse_args()
    if args.rss_logins:
        base = Path(tempfile.mkdtemp(prefix="ftp-bench-", dir=os.environ.get("BENCH_TMPDIR")))
        try:
            rss_logins(base, args.rss_logins)
        finally:
            shutil.rmtree(base, ignore_errors=True)
        return 0
    if args.quick:
        args.runs, args.size_mb, args.clients = 1, 64, 20
    names = args.only or ["netproto", "pyftpdlib", "vsftpd", "twisted"]
    size = args.size_mb * MB
    base = Path(tempfile.mkdtemp(prefix="ftp-bench-", dir=os.environ.get("BENCH_TMPDIR")))
    base.chmod(0o755)
    servers: list[Server] = []
    try:
        for name in names:
            why = available(name)
            if why is not None:
                print(f"skipping {name}: {why}")
                continue
            server = Server(name, base)
            with open(server.files / "big.bin", "wb") as f:
                for _ in range(args.size_mb):
                    f.write(os.urandom(MB))
            (server.files / "small.bin").write_bytes(os.urandom(1_000_000))
            server.start()
            servers.append(server)
        results: dict[tuple[str, str], list[float]] = {}
        others: dict[tuple[str, str], list[float]] = {}
        server_cpu: dict[tuple[str, str], list[float]] = {}
        loads = {
            "retr": ("RETR MB/s", retr_mbps, size),
            "stor": ("STOR MB/s", stor_mbps, size),
            "clients": (f"{args.clients} x login+RETR 1 MB s", many_clients_seconds,
                        args.clients),
            "ftps-retr": ("FTPS RETR (PROT P) MB/s", ftps_retr_mbps, size),
        }  # fmt: skip
        chosen = [loads[k.strip()] for k in args.loads.split(",") if k.strip()]
        for run in range(args.runs):
            for server in servers:
                for load, fn, arg in chosen:
                    if fn is ftps_retr_mbps and server.name in ("vsftpd", "twisted"):
                        continue
                    value, busy, cpu = measured(fn, server, arg)
                    results.setdefault((load, server.name), []).append(value)
                    others.setdefault((load, server.name), []).append(busy)
                    server_cpu.setdefault((load, server.name), []).append(cpu)
                    print(f"run {run + 1} {server.name:10} {load:28} {value:10.2f}"
                          f"  server CPU {cpu:6.2f} s  others {busy:3.0f}%",
                          flush=True)  # fmt: skip
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)
    rows = list(dict.fromkeys(load for load, _ in results))
    print()
    print("| load | server | median | runs | server CPU s | others % | vs pyftpdlib |")
    print("|---|---|---:|---|---:|---|---:|")
    for load in rows:
        base_values = results.get((load, "pyftpdlib"))
        for server in servers:
            if (load, server.name) not in results:
                continue
            values = results[(load, server.name)]
            good = [v for v in values if v == v]  # NaN: clients failed in that run
            median = statistics.median(good) if good else float("nan")
            ratio = ""
            if base_values:
                base_median = statistics.median(base_values)
                # for a time, smaller is better: the ratio is pyftpdlib's time over ours
                ratio = (f"{base_median / median:.2f}x" if load.endswith(" s")
                         else f"{median / base_median:.2f}x")  # fmt: skip
            shown = ", ".join(f"{v:.2f}" for v in values)
            shown_others = ", ".join(f"{v:.0f}" for v in others[(load, server.name)])
            cpu = statistics.median(server_cpu[(load, server.name)])
            print(f"| {load} | {server.name} | {median:,.2f} | {shown} | {cpu:.2f} "
                  f"| {shown_others} | {ratio} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
