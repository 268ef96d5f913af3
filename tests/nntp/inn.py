"""A private INN 2 (Debian's inn2) on loopback, with its own configuration in a temporary dir.

:class:`PrivateINN` writes a minimal configuration (tradspool, tradindexed
overview, readers and feeds from localhost, a batch-file feed ``ours`` for
innxmit), builds the history, starts ``innd -f`` (it switches to the ``news``
user itself) and stops it.  Nothing of the system instance is used.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from tests.waiting import wait_for_exit, wait_for_files

__all__ = ["INN_BIN", "PrivateINN", "inn_missing"]

INN_BIN = Path("/usr/lib/news/bin")


def inn_missing() -> str | None:
    """Why INN cannot run here (``None``: it can)."""
    if not (INN_BIN / "innd").exists():
        return "INN is not installed (apt-get install inn2)"
    if os.geteuid() != 0:
        return "starting a private innd needs root (it switches to the news user)"
    try:
        pwd.getpwnam("news")
    except KeyError:
        return "no news user"
    return None


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


_INN_CONF = """\
mta: "/bin/true %s"
organization: "netproto tests"
ovmethod: tradindexed
hismethod: hisv6
pathhost: inn.test
domain: localdomain
pathnews: /usr/lib/news
port: {port}
bindaddress: 127.0.0.1
enableoverview: true
storeonxref: true
wireformat: true
noreader: false
readerswhenstopped: false
nnrpdloadlimit: 0
artcutoff: 0
maxartsize: 1000000
logsitename: false
docnnfsync: false
pathbin: /usr/lib/news/bin
pathcontrol: /usr/lib/news/bin/control
pathfilter: /etc/news/filter
pathdb: {d}/db
pathetc: {d}/etc
pathrun: {d}/run
pathlog: {d}/log
pathspool: {d}/spool
patharticles: {d}/spool/articles
pathoverview: {d}/spool/overview
pathincoming: {d}/spool/incoming
pathoutgoing: {d}/spool/outgoing
patharchive: {d}/spool/archive
pathtmp: {d}/tmp
pathhttp: {d}/http
"""

_ACTIVE = (
    "control 0000000000 0000000001 n\n"
    "control.cancel 0000000000 0000000001 n\n"
    "junk 0000000000 0000000001 n\n"
)


class PrivateINN:
    """One private innd (see the module docstring); ``start()``, then ``stop()``."""

    def __init__(self, groups: dict[str, str]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="netproto-inn-"))
        self.port = free_port()
        self.groups = groups
        self.env = {**os.environ, "INNCONF": str(self.dir / "etc" / "inn.conf")}
        self.process: subprocess.Popen[bytes] | None = None

    def _write(self, name: str, text: str) -> None:
        (self.dir / name).write_text(text)

    def configure(self) -> None:
        """Write the configuration, active file and history."""
        d = self.dir
        spool = ("articles", "overview", "incoming", "outgoing", "archive")
        for sub in ("db", "etc", "run", "log", "tmp", "http", *(f"spool/{s}" for s in spool)):
            (d / sub).mkdir(parents=True, exist_ok=True)
        self._write("etc/inn.conf", _INN_CONF.format(port=self.port, d=d))
        self._write("etc/storage.conf", "method tradspool {\n  newsgroups: *\n  class: 0\n}\n")
        self._write("etc/expire.ctl", "/remember/:11\n*:A:1:10:never\n")
        self._write(
            "etc/incoming.conf",
            "streaming: true\nmax-connections: 32\n"
            'peer ME {\n  hostname: "localhost, 127.0.0.1"\n}\n',
        )
        self._write(
            "etc/readers.conf",
            'auth "all" {\n  hosts: "*"\n  default: "<reader>"\n}\n'
            'access "all" {\n  users: "<reader>"\n  newsgroups: "*"\n  access: RPA\n}\n',
        )
        self._write("etc/newsfeeds", "ME:*::\nours:*,!junk,!control*:Tf,Wnm:\n")
        for name in ("moderators", "distrib.pats", "control.ctl", "control.ctl.local",
                     "nnrpd.track", "localgroups", "subscriptions", "nocem.ctl"):  # fmt: skip
            source = Path("/etc/news") / name
            if source.exists():
                shutil.copy(source, d / "etc" / name)
            else:
                self._write(f"etc/{name}", "")
        active = _ACTIVE + "".join(f"{g} 0000000000 0000000001 y\n" for g in self.groups)
        self._write("db/active", active)
        self._write("db/active.times", "")
        self._write("db/newsgroups", "".join(f"{g}\t{t}\n" for g, t in self.groups.items()))
        self._write("db/history", "")
        news = pwd.getpwnam("news")
        for root, dirs, files in os.walk(d):
            for name in dirs + files:
                os.chown(os.path.join(root, name), news.pw_uid, news.pw_gid)
        os.chown(d, news.pw_uid, news.pw_gid)
        os.chmod(d, 0o755)
        self.as_news([str(INN_BIN / "makedbz"), "-i", "-o"])

    def as_news(self, argv: list[str]) -> subprocess.CompletedProcess[bytes]:
        """Run an INN tool as the news user with this instance's configuration."""
        news = pwd.getpwnam("news")
        return subprocess.run(
            argv, env=self.env, cwd=self.dir, check=True, capture_output=True, timeout=60,
            user=news.pw_uid, group=news.pw_gid,
        )  # fmt: skip

    def start(self) -> None:
        """Configure and start innd; return once it accepts connections."""
        self.configure()
        self.process = subprocess.Popen(
            [str(INN_BIN / "innd"), "-f"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        run = self.dir / "run"

        def ready() -> bool:
            if not (run / "innd.pid").exists():
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5):
                    return True
            except ConnectionRefusedError:
                return False

        wait_for_files([run], ready, timeout=30, what="innd listening", process=self.process)

    def ctlinnd(self, *args: str) -> bytes:
        """Run ``ctlinnd`` against this innd."""
        return self.as_news([str(INN_BIN / "ctlinnd"), "-s", "-t", "30", *args]).stdout

    def stop(self) -> None:
        """Stop innd and remove the directory."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()  # a throwaway instance: nothing to flush
            wait_for_exit(process.pid, 30)
            process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
