"""A private Dovecot for interop tests: own configuration, loopback listeners, passwd-file users.

Needs Debian's ``dovecot-core`` plus ``dovecot-pop3d`` and/or ``dovecot-imapd``
(``.ci/peers`` installs them); :func:`missing` says why a test must skip.
Dovecot runs in the foreground from a temporary directory, as the calling
user (or ``nobody`` when that is root: Dovecot refuses mail access as root).
:meth:`Dovecot.start` returns only once every listener has sent its greeting,
so a test never races the login processes or the authentication service.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable

from tests.waiting import wait_for_files

__all__ = ["BINARY", "Dovecot", "free_port", "missing"]

BINARY = shutil.which("dovecot") or (
    "/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None
)
#: Each protocol's program, and the line its greeting starts with.
_PROGRAMS = {"pop3": "/usr/lib/dovecot/pop3", "imap": "/usr/lib/dovecot/imap"}
_GREETINGS = {"pop3": b"+OK", "imap": b"* OK"}
#: Start attempts: a port picked free can be taken by another test before Dovecot binds it.
_ATTEMPTS = 3


def missing(protocol: str) -> str | None:
    """Why Dovecot cannot serve ``protocol`` here (``None`` when it can)."""
    package = f"dovecot-{protocol}d"
    if BINARY is None or not os.path.exists(_PROGRAMS[protocol]):
        return f"Dovecot's {protocol.upper()} server is not installed (apt-get install {package})"
    return None


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Dovecot:
    """A private Dovecot serving ``protocols`` over the Maildir tree ``base`` (user u: base/u)."""

    def __init__(
        self,
        base: str,
        users: dict[str, str],
        protocols: Iterable[str] = ("pop3",),
        extra: str = "",
        index: str = "MEMORY",
    ) -> None:
        self.base = base
        self.users = users
        self.protocols = tuple(protocols)
        self.extra = extra
        #: Where Dovecot keeps its index: ``MEMORY`` (none kept), or a directory.
        self.index = index
        # Outside _trial_temp: Dovecot's processes need +x on every parent directory.
        self.dir = tempfile.mkdtemp(prefix="dvc")
        os.chmod(self.dir, 0o755)
        self.run_dir = os.path.join(self.dir, "r")
        if os.getuid() == 0:
            self.uid = self.gid = 65534
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
        self.ports: dict[str, int] = {}
        self.process: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        """What Dovecot has logged so far."""
        path = os.path.join(self.dir, "dovecot.log")
        if not os.path.exists(path):
            return ""
        with open(path, errors="replace") as f:
            return f.read()

    def share_tree(self) -> None:
        """As root, hand the mail tree to Dovecot's user (in production both run as one user)."""
        if os.getuid() != 0:
            return
        os.chown(self.base, self.uid, self.gid)
        for root, dirs, files in os.walk(self.base):
            for name in [*dirs, *files]:
                os.chown(os.path.join(root, name), self.uid, self.gid)

    def _write_config(self) -> str:
        passwd = os.path.join(self.dir, "passwd")
        with open(passwd, "w") as f:
            for user, password in self.users.items():
                f.write(f"{user}:{{PLAIN}}{password}:{self.uid}:{self.gid}::{self.base}/{user}\n")
        listeners = "".join(
            f"service {p}-login {{\n  inet_listener {p} {{\n"
            f"    address = 127.0.0.1\n    port = {port}\n  }}\n"
            f"  inet_listener {p}s {{\n    port = 0\n  }}\n}}\n"
            for p, port in self.ports.items()
        )
        conf = os.path.join(self.dir, "dovecot.conf")
        with open(conf, "w") as f:
            f.write(
                f"base_dir = {self.run_dir}\n"
                f"state_dir = {self.dir}/state\n"
                f"log_path = {self.dir}/dovecot.log\n"
                f"first_valid_uid = {min(self.uid, 500)}\n"
                f"first_valid_gid = {min(self.gid, 500)}\n"
                f"protocols = {' '.join(self.protocols)}\n"
                "ssl = no\n"
                "disable_plaintext_auth = no\n"
                "auth_mechanisms = plain login\n"
                f"mail_location = maildir:{self.base}/%u:INDEX={self.index}\n"
                f"{listeners}"
                f"passdb {{\n  driver = passwd-file\n  args = {passwd}\n}}\n"
                f"userdb {{\n  driver = passwd-file\n  args = {passwd}\n}}\n"
                f"{self.extra}"
            )
        return conf

    def start(self) -> None:
        """Start Dovecot; return once each listener greets (raise AssertionError with its log)."""
        assert BINARY is not None
        self.share_tree()
        problem = ""
        for _ in range(_ATTEMPTS):
            self.ports = {p: free_port() for p in self.protocols}
            conf = self._write_config()
            os.makedirs(self.run_dir, 0o755, exist_ok=True)
            self.process = subprocess.Popen(
                [BINARY, "-F", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            try:
                self._wait_ready()
                return
            except (AssertionError, RuntimeError, OSError) as e:
                problem = f"{e}; log: {self.log()}"
                self.stop()
                if "in use" not in problem and "refused" not in problem:
                    break
        raise AssertionError(f"dovecot did not start: {problem}")

    def _wait_ready(self) -> None:
        login = os.path.join(self.run_dir, "login")
        wait_for_files([self.run_dir], lambda: os.path.isdir(login), 30, process=self.process)
        wait_for_files(
            [login],
            lambda: all(os.path.exists(os.path.join(login, p)) for p in self.protocols),
            30,
            process=self.process,
        )
        # The master binds the listeners before it makes the login sockets; the
        # greeting comes once a login process and the auth service are ready.
        for protocol, port in self.ports.items():
            greeting = self._greeting(port)
            if not greeting.startswith(_GREETINGS[protocol]):
                raise AssertionError(f"{protocol} greeted {greeting!r}")

    def _greeting(self, port: int) -> bytes:
        """The first line a listener sends; a refused connect is retried for up to 10 s."""
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                    return s.makefile("rb").readline()
            except ConnectionRefusedError:
                if time.monotonic() > deadline or (
                    self.process is not None and self.process.poll() is not None
                ):
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        """Stop Dovecot (idempotent)."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:  # a loaded machine: do not leave it behind
            process.kill()
            process.wait(30)
        if process.stderr is not None:
            process.stderr.close()

    def cleanup(self) -> None:
        """Stop Dovecot and remove its directory."""
        self.stop()
        shutil.rmtree(self.dir, True)
