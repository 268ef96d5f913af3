"""HTTP client benchmark: our opener against treq, bare Agent, aiohttp, httpx, requests and urllib.

One nginx on loopback (started here, its own config) serves every row, and
the rows run interleaved round by round (A1 B1 C1 ... A2 B2 C2 ...), each
client in a fresh process so that its peak RSS is its own. Three loads:

- ``plain``: ``--requests`` GETs (5,000) of a 1 KB file, ``--concurrency``
  (20) in flight;
- ``redirect``: the same count of fetches of ``/r``, a 302 that sets a
  cookie and points at the 1 KB file (two requests per fetch);
- ``stream``: one GET of a ``--stream-mb`` (1,024) MB file, consumed chunk
  by chunk; the figures are MB/s and the client's peak RSS;
- ``tls``: the ``plain`` load over https (nginx with ``ssl http2``, a
  self-signed certificate the clients trust), HTTP/1.1 against HTTP/2:
  ``ours-h1`` (``http2=False``, ``--concurrency`` TLS connections),
  ``ours-h2`` (ALPN picks h2: one connection, 20 streams), and httpx with
  ``http2=False``/``True`` (the one other client here that speaks h2;
  aiohttp does not).  Not in the default ``--loads``.

Every client has cookies, redirects and content decoding on where it has
them (ours: the default opener; treq: its defaults; Agent: CookieAgent,
RedirectAgent and ContentDecoderAgent(gzip) around a persistent pool of 20;
aiohttp and httpx: a session with a cookie jar, following redirects;
requests: a Session per thread; urllib.request: an opener with
HTTPCookieProcessor per thread, a new connection per request, as urllib
does).

Run from a checkout::

    python bench/http_client.py                # 5 rounds, medians
    python bench/http_client.py --quick        # 1 round, 1,000 requests, 64 MB stream
    python bench/http_client.py --only ours --only treq --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

CLIENTS = ["ours", "treq", "agent", "aiohttp", "httpx", "requests", "urllib"]
TLS_CLIENTS = ["ours-h1", "ours-h2", "httpx-h1", "httpx-h2"]
STREAM_CLIENTS = ["ours", "agent", "treq", "aiohttp"]

NGINX_CONF = """
{user}
worker_processes 1;
error_log {root}/error.log warn;
pid {root}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/tmp;
    proxy_temp_path {root}/tmp;
    fastcgi_temp_path {root}/tmp;
    uwsgi_temp_path {root}/tmp;
    scgi_temp_path {root}/tmp;
    types {{ application/octet-stream bin; }}
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    sendfile on;
    server {{
        listen 127.0.0.1:{port};
        root {root}/www;
        gzip on;
        gzip_types text/plain;
        location = /r {{ add_header Set-Cookie "s=1; Path=/"; return 302 /1k.bin; }}
    }}
    server {{
        listen 127.0.0.1:{tls_port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {root}/www;
    }}
}}
"""


# ---------------------------------------------------------------------------- clients


_cpu_at_start = [0.0]


def _start() -> float:
    """Note the process's CPU time; return the wall clock (the timed part begins)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _cpu_at_start[0] = usage.ru_utime + usage.ru_stime
    return time.perf_counter()


def _result(count: int, seconds: float, nbytes: int = 0) -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - _cpu_at_start[0]  # the timed part only
    return {"count": count, "seconds": seconds, "bytes": nbytes,
            "rss_mb": usage.ru_maxrss / 1024, "cpu_s": cpu}  # fmt: skip


def run_twisted(client: str, url: str, n: int, conc: int, stream: bool) -> dict[str, float]:
    from twisted.internet import defer, reactor, task
    from twisted.internet.protocol import Protocol
    from twisted.web.client import (
        Agent,
        ContentDecoderAgent,
        CookieAgent,
        GzipDecoder,
        HTTPConnectionPool,
        RedirectAgent,
        ResponseDone,
        readBody,
    )

    out: dict[str, float] = {}

    class Count(Protocol):
        def __init__(self) -> None:
            self.size = 0
            self.done: defer.Deferred[int] = defer.Deferred()

        def dataReceived(self, data: bytes) -> None:
            self.size += len(data)

        def connectionLost(self, reason: Any = None) -> None:
            if reason is None or reason.check(ResponseDone):
                self.done.callback(self.size)
            else:
                self.done.errback(reason)

    if client.startswith("ours"):
        sys.path.insert(0, str(REPO))
        from netproto_twisted.http import ProxyHandler, build_opener

        tls: dict[str, Any] = {}
        if url.startswith("https:"):
            tls = {"ca_file": os.environ["BENCH_CA"], "http2": client == "ours-h2"}
        opener = build_opener(ProxyHandler({}), reactor=reactor, max_per_host=conc, **tls)

        async def one() -> int:
            r = await opener.open(url)
            if stream:
                return int(await r.collect(lambda _: None, None))
            return len(await r.read())
    elif client == "agent":
        from http.cookiejar import CookieJar

        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = conc
        agent = RedirectAgent(
            ContentDecoderAgent(
                CookieAgent(Agent(reactor, pool=pool), CookieJar()), [(b"gzip", GzipDecoder)]
            )
        )

        async def one() -> int:
            r = await agent.request(b"GET", url.encode())
            if stream:
                p = Count()
                r.deliverBody(p)
                return await p.done
            return len(await readBody(r))
    else:  # treq
        import treq
        from treq.client import HTTPClient

        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = conc
        http = HTTPClient(Agent(reactor, pool=pool))

        async def one() -> int:
            r = await http.get(url)
            if stream:
                size = [0]
                await treq.collect(r, lambda d: size.__setitem__(0, size[0] + len(d)))
                return size[0]
            return len(await r.content())

    async def main(_: Any) -> None:
        nbytes = 0
        start = _start()
        if stream:
            nbytes = await one()
            count = 1
        else:
            per = n // conc

            async def worker() -> int:
                total = 0
                for _ in range(per):
                    total += await one()
                return total

            sizes = await defer.gatherResults(
                [defer.ensureDeferred(worker()) for _ in range(conc)]
            )
            nbytes, count = sum(sizes), per * conc
        out.update(_result(count, time.perf_counter() - start, nbytes))
        print(json.dumps(out))  # react() exits the process: report here

    task.react(lambda r: defer.ensureDeferred(main(r)), [])
    return out  # pragma: no cover - react exits


def run_asyncio(client: str, url: str, n: int, conc: int, stream: bool) -> dict[str, float]:
    import asyncio

    async def main() -> dict[str, float]:
        per = n // conc
        if client == "aiohttp":
            import aiohttp

            conn = aiohttp.TCPConnector(limit=conc)
            async with aiohttp.ClientSession(connector=conn) as s:

                async def one() -> int:
                    async with s.get(url) as r:
                        if stream:
                            size = 0
                            async for chunk in r.content.iter_chunked(1 << 16):
                                size += len(chunk)
                            return size
                        return len(await r.read())

                return await drive(one, per)
        import httpx

        limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
        tls: dict[str, Any] = {}
        if url.startswith("https:"):
            tls = {"verify": os.environ["BENCH_CA"], "http2": client == "httpx-h2"}
        async with httpx.AsyncClient(follow_redirects=True, limits=limits, **tls) as c:

            async def one() -> int:
                r = await c.get(url)
                return len(r.content)

            return await drive(one, per)

    async def drive(one: Any, per: int) -> dict[str, float]:
        start = _start()
        if stream:
            nbytes = await one()
            return _result(1, time.perf_counter() - start, nbytes)

        async def worker() -> int:
            total = 0
            for _ in range(per):
                total += await one()
            return total

        sizes = await asyncio.gather(*(worker() for _ in range(conc)))
        return _result(per * conc, time.perf_counter() - start, sum(sizes))

    return asyncio.run(main())


def run_threads(client: str, url: str, n: int, conc: int) -> dict[str, float]:
    import threading

    per = n // conc
    sizes = [0] * conc

    def worker(i: int) -> None:
        if client == "requests":
            import requests

            s = requests.Session()
            s.trust_env = False
            for _ in range(per):
                sizes[i] += len(s.get(url).content)
        else:
            import http.cookiejar
            import urllib.request

            op = urllib.request.build_opener(
                urllib.request.ProxyHandler({}),
                urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
            )
            for _ in range(per):
                with op.open(url) as r:
                    sizes[i] += len(r.read())

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(conc)]
    start = _start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return _result(per * conc, time.perf_counter() - start, sum(sizes))


def client_main(args: argparse.Namespace) -> None:
    stream = args.load == "stream"
    if args.client in ("ours", "ours-h1", "ours-h2", "agent", "treq"):
        run_twisted(args.client, args.url, args.requests, args.concurrency, stream)
        return
    if args.client in ("aiohttp", "httpx", "httpx-h1", "httpx-h2"):
        out = run_asyncio(args.client, args.url, args.requests, args.concurrency, stream)
    else:
        out = run_threads(args.client, args.url, args.requests, args.concurrency)
    print(json.dumps(out))


# ---------------------------------------------------------------------------- driver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_nginx(root: Path, stream_mb: int) -> tuple[subprocess.Popen[bytes], int, int]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    (root / "www").mkdir(parents=True)
    (root / "tmp").mkdir()
    (root / "www" / "1k.bin").write_bytes(bytes(range(256)) * 4)
    with open(root / "www" / "big.bin", "wb") as f:
        f.truncate(stream_mb << 20)  # sparse: nginx reads zeros without disk I/O
    # Read it once, so that the page cache holds it before the first stream row
    # (otherwise that row alone pays for filling the cache, at half the speed).
    with open(root / "www" / "big.bin", "rb", buffering=0) as f:
        block = bytearray(1 << 20)
        while f.readinto(block):
            pass
    port, tls_port = free_port(), free_port()
    sys.path.insert(0, str(REPO))
    from netproto_twisted.core.tls import ensure_dev_certificate

    cert, key = ensure_dev_certificate(root / "cert")
    os.environ["BENCH_CA"] = str(cert)
    user = ""
    if os.getuid() == 0:
        import pwd

        user = f"user {pwd.getpwuid(os.getuid()).pw_name};"
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONF.format(root=root, port=port, user=user, tls_port=tls_port,
                                      cert=cert, key=key))  # fmt: skip
    proc = subprocess.Popen([nginx, "-p", str(root), "-c", str(conf), "-g", "daemon off;"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            socket.create_connection(("127.0.0.1", tls_port), timeout=1).close()
            return proc, port, tls_port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("nginx did not start")


def run_row(client: str, load: str, base: str, args: argparse.Namespace) -> dict[str, float]:
    path = {"plain": "/1k.bin", "redirect": "/r", "stream": "/big.bin", "tls": "/1k.bin"}[load]
    argv = [sys.executable, __file__, "--client", client, "--load", load, "--url", base + path,
            "--requests", str(args.requests), "--concurrency", str(args.concurrency)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{client} {load} failed: {proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--client", help=argparse.SUPPRESS)
    p.add_argument("--load", default="plain", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--requests", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--stream-mb", type=int, default=1024)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", action="append", default=[])
    p.add_argument("--loads", default="plain,redirect,stream")
    p.add_argument("--json")
    p.add_argument("--from-json", help="print the table of an earlier run's --json file")
    args = p.parse_args()
    if args.client:
        client_main(args)
        return
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        loaded = {tuple(k.split("/", 1)): v for k, v in saved.items()}
        names = [c for c in CLIENTS + TLS_CLIENTS if any(k[1] == c for k in loaded)]
        print(table(loaded, [x for x in args.loads.split(",") if any(k[0] == x for k in loaded)],
                    names))  # fmt: skip
        return
    if args.quick:
        args.requests, args.runs, args.stream_mb = 1000, 1, 64
    clients = [c for c in CLIENTS + TLS_CLIENTS if not args.only or c in args.only]
    loads = args.loads.split(",")
    # SIGTERM ends the run like ^C: nginx is stopped and its files removed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    root = Path(tempfile.mkdtemp(prefix="bench-httpc-"))
    proc, port, tls_port = start_nginx(root, args.stream_mb)
    base = f"http://127.0.0.1:{port}"
    tls_base = f"https://localhost:{tls_port}"
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    try:
        for rnd in range(args.runs):
            for load in loads:
                for client in clients:
                    if load == "stream" and client not in STREAM_CLIENTS:
                        continue
                    if (load == "tls") != (client in TLS_CLIENTS):
                        continue
                    r = run_row(client, load, tls_base if load == "tls" else base, args)
                    results.setdefault((load, client), []).append(r)
                    print(f"round {rnd + 1} {load:8} {client:9} {_fmt(load, r)}", file=sys.stderr)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)
    print(table(results, loads, clients))
    if args.json:
        Path(args.json).write_text(json.dumps({f"{k[0]}/{k[1]}": v for k, v in results.items()}))


def _fmt(load: str, r: dict[str, float]) -> str:
    if load == "stream":
        return f"{r['bytes'] / r['seconds'] / 1e6:8.1f} MB/s  RSS {r['rss_mb']:.0f} MB"
    return f"{r['count'] / r['seconds']:8.0f} /s  RSS {r['rss_mb']:.0f} MB"


def table(results: dict[tuple[str, str], list[dict[str, float]]], loads: list[str],
          clients: list[str]) -> str:  # fmt: skip
    lines = []
    for load in loads:
        unit = "MB/s" if load == "stream" else ("fetches/s" if load == "redirect" else "req/s")
        base_name = {"stream": "agent", "tls": "ours-h1"}.get(load, "treq")
        lines.append(f"\n{load}: median {unit} over {len(next(iter(results.values())))} runs")
        lines.append(
            f"| client | {unit} | CPU us/{'MB' if load == 'stream' else 'fetch'} "
            f"| peak RSS MB | vs {base_name} | vs urllib |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|")
        med: dict[str, tuple[float, float, float | None]] = {}
        for client in clients:
            runs = results.get((load, client))
            if not runs:
                continue
            if load == "stream":
                rate = statistics.median(r["bytes"] / r["seconds"] / 1e6 for r in runs)
            else:
                rate = statistics.median(r["count"] / r["seconds"] for r in runs)
            per = [
                r["cpu_s"] * 1e6 / (r["bytes"] / 1e6 if load == "stream" else r["count"])
                for r in runs
                if "cpu_s" in r
            ]
            cpu = statistics.median(per) if per else None
            med[client] = (rate, statistics.median(r["rss_mb"] for r in runs), cpu)
        for client, (rate, rss, cpu) in med.items():
            vs = f"{rate / med[base_name][0]:.2f}x" if base_name in med else "-"
            vu = f"{rate / med['urllib'][0]:.2f}x" if "urllib" in med else "-"
            shown = f"{cpu:,.0f}" if cpu is not None else "-"
            lines.append(f"| {client} | {rate:,.0f} | {shown} | {rss:,.0f} | {vs} | {vu} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
