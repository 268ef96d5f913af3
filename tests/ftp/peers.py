"""Real FTP servers for the client's interop tests: vsftpd and pyftpdlib, on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest

from netproto_twisted.core.tls import ensure_dev_certificate

VSFTPD = shutil.which("vsftpd") or (
    "/usr/sbin/vsftpd" if os.path.exists("/usr/sbin/vsftpd") else None
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_port(port: int, process: subprocess.Popen[bytes], name: str) -> None:
    """Until the port accepts (tried every 50 ms, 10 s at most) or the process exits."""
    for _ in range(200):
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            await deferLater(reactor, 0.05, lambda: None)
    raise RuntimeError(f"{name} did not listen on {port}")


class Vsftpd:
    """vsftpd with its own config: anonymous (as the Debian ``ftp`` user) over ``root``.

    ``up/`` is writable; TLS with ``require_ssl_reuse=YES``.
    """

    def __init__(self, base: Path) -> None:
        if VSFTPD is None:
            raise SkipTest("vsftpd is not installed (Debian package; .ci/peers installs it)")
        if os.geteuid() != 0:
            raise SkipTest("vsftpd needs root to start")
        try:
            import pwd

            pwd.getpwnam("ftp")
        except KeyError:
            raise SkipTest("no 'ftp' user (the vsftpd package creates it)") from None
        self.base = base
        self.root = base / "root"
        (self.root / "up").mkdir(parents=True)
        (base / "empty").mkdir()
        os.chmod(self.root, 0o555)
        os.chmod(self.root / "up", 0o777)
        os.chmod(base, 0o755)
        cert, key = ensure_dev_certificate(base / "tls")
        self.port = free_port()
        config = base / "vsftpd.conf"
        config.write_text(
            "\n".join([
                "listen=YES", "listen_ipv6=NO", "listen_address=127.0.0.1",
                f"listen_port={self.port}", "background=NO", "anonymous_enable=YES",
                "local_enable=NO", f"anon_root={self.root}", "ftp_username=ftp",
                "no_anon_password=YES", "write_enable=YES", "anon_upload_enable=YES",
                "anon_mkdir_write_enable=YES", "anon_other_write_enable=YES", "anon_umask=022",
                "seccomp_sandbox=NO", "isolate=NO", "isolate_network=NO",
                f"secure_chroot_dir={base / 'empty'}", "pasv_enable=YES", "ssl_enable=YES",
                "allow_anon_ssl=YES", "require_ssl_reuse=YES", f"rsa_cert_file={cert}",
                f"rsa_private_key_file={key}", f"vsftpd_log_file={base / 'log'}",
                "xferlog_enable=YES", "",
            ])
        )  # fmt: skip
        self.process = subprocess.Popen(
            [VSFTPD, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    async def started(self) -> None:
        await wait_port(self.port, self.process, "vsftpd")

    def stop(self) -> Deferred[None]:
        self.process.terminate()
        return deferToThread(self.process.wait).addCallback(lambda _: None)


_PYFTPDLIB = """
import sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
from pyftpdlib.servers import FTPServer
root, cert, tls = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
authorizer = DummyAuthorizer()
authorizer.add_user("bob", "pw", root, perm="elradfmwMT")
handler = TLS_FTPHandler if tls else FTPHandler
handler.authorizer = authorizer
if tls:
    handler.certfile = cert
server = FTPServer(("127.0.0.1", 0), handler)
print(server.address[1], flush=True)
server.serve_forever(timeout=0.2)
"""


class Pyftpdlib:
    """pyftpdlib in a subprocess: user ``bob``/``pw`` over ``root``; TLS if asked."""

    def __init__(self, base: Path, tls: bool = False) -> None:
        try:
            import pyftpdlib  # noqa: F401
        except ImportError:
            raise SkipTest("pyftpdlib is not installed") from None
        self.root = base / "root"
        self.root.mkdir(parents=True)
        cert, key = ensure_dev_certificate(base / "tls")
        both = base / "both.pem"
        both.write_bytes(cert.read_bytes() + key.read_bytes())
        self.process = subprocess.Popen(
            [sys.executable, "-c", _PYFTPDLIB, str(self.root), str(both), "1" if tls else "0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.port = 0

    async def started(self) -> None:
        assert self.process.stdout is not None
        line = await deferToThread(self.process.stdout.readline)
        if not line.strip():
            raise RuntimeError("pyftpdlib did not start")
        self.port = int(line)

    def stop(self) -> Deferred[None]:
        self.process.terminate()
        return deferToThread(self.process.wait).addCallback(lambda _: None)
