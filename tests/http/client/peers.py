"""Real peers the HTTP client tests talk to: nginx and tinyproxy, started on loopback per test."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from tests.waiting import wait_for_exit, wait_for_listener

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
TINYPROXY = shutil.which("tinyproxy") or (
    "/usr/bin/tinyproxy" if os.path.exists("/usr/bin/tinyproxy") else None
)
NGINX_MISSING = None if NGINX else "nginx is not installed (Debian: nginx-light)"
TINYPROXY_MISSING = None if TINYPROXY else "tinyproxy is not installed (Debian: tinyproxy)"


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Peer:
    """A started program; :meth:`stop` ends it."""

    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process = process
        self.port = port

    def stop(self) -> None:
        """Stop the program and wait for it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            wait_for_exit(self.process.pid, 10)
        self.process.wait()


NGINX_CONF = """
{user}
worker_processes 1;
error_log {root}/logs/error.log warn;
pid {root}/logs/nginx.pid;
events {{ worker_connections 256; }}
http {{
    log_format conn '$connection $server_protocol $request';
    {access_log}
    client_body_temp_path {root}/tmp;
    proxy_temp_path {root}/tmp;
    fastcgi_temp_path {root}/tmp;
    uwsgi_temp_path {root}/tmp;
    scgi_temp_path {root}/tmp;
    types {{ text/plain txt; text/html html; application/octet-stream bin; }}
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port}{listen_options};
        {tls}
        root {root}/www;
        gzip on;
        gzip_types text/plain;
        gzip_min_length 0;
        location = /redirect {{ add_header Set-Cookie "seen=1; Path=/"; return 302 /cookie; }}
        location = /loop {{ return 302 /loop; }}
        location = /cookie {{ return 200 "cookie=$http_cookie"; }}
        location /private/ {{
            auth_basic "private area";
            auth_basic_user_file {root}/htpasswd;
        }}
    }}
}}
"""


def start_nginx(
    root: Path,
    files: dict[str, bytes],
    *,
    tls: tuple[Path, Path] | None = None,
    http2: bool = False,
) -> Peer:
    """Start nginx on a free loopback port serving ``files`` (paths under www/).

    ``tls`` is ``(cert, key)`` for https, ``http2`` adds HTTP/2 (by ALPN) to
    it; with either, ``logs/access.log`` has one line per request: nginx's
    connection number, the protocol and the request line.
    """
    assert NGINX is not None
    for sub in ("logs", "tmp", "www/private"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / "www" / name).write_bytes(data)
    (root / "htpasswd").write_text("alice:{PLAIN}wonderland\n")
    port = free_port()
    conf = root / "nginx.conf"
    # Workers run as the invoking user, so that they read the test's files.
    user = f"user {pwd.getpwuid(os.getuid()).pw_name};" if os.getuid() == 0 else ""
    options = (" ssl" if tls else "") + (" http2" if http2 else "")
    tls_lines = f"ssl_certificate {tls[0]}; ssl_certificate_key {tls[1]};" if tls else ""
    access = f"access_log {root}/logs/access.log conn;" if tls else "access_log off;"
    conf.write_text(
        NGINX_CONF.format(
            root=root,
            port=port,
            user=user,
            listen_options=options,
            tls=tls_lines,
            access_log=access,
        )
    )
    log = root / "logs" / "nginx.pid"
    process = subprocess.Popen(
        [NGINX, "-p", str(root), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=open(root / "logs" / "stderr.log", "wb"),  # noqa: SIM115
    )
    wait_for_listener(port, process, log, name="nginx", about_to_listen=b"\n")
    return Peer(process, port)


def start_tinyproxy(root: Path) -> Peer:
    """Start tinyproxy on a free loopback port (CONNECT to any port allowed)."""
    assert TINYPROXY is not None
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = root / "tinyproxy.log"
    conf = root / "tinyproxy.conf"
    conf.write_text(
        f"Port {port}\nListen 127.0.0.1\nTimeout 30\nLogLevel Info\n"
        f'LogFile "{log}"\nPidFile "{root}/tinyproxy.pid"\nMaxClients 50\n'
        "Allow 127.0.0.1\nDisableViaHeader Yes\n"
    )
    process = subprocess.Popen(
        [TINYPROXY, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for_listener(port, process, log, name="tinyproxy", about_to_listen=b"listening on fd")
    return Peer(process, port)
