"""The benchmark harness's pieces: port wait, RSS reading, load loop, table, one tiny run."""

# trial's assertion methods are untyped.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import argparse
import http.server
import json
import os
import re
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from bench import harness
from bench.harness import (
    Case,
    CaseResult,
    Dialogue,
    LoadParams,
    RunResult,
    ServerProcess,
    ServerSpec,
    Step,
    add_arguments,
    case_params,
    dialogue_load,
    format_table,
    free_port,
    http_response_complete,
    main,
    paired_ratios,
    params_from_args,
    percentile,
    process_tree,
    raise_nofile_limit,
    read_cpu_seconds,
    read_peak_rss,
    run_bench,
    run_load,
    wait_for_port,
    wait_until_quiet,
)

REPO = Path(__file__).resolve().parent.parent
STDLIB_ECHO = [sys.executable, str(REPO / "bench" / "stdlib_echo.py")]
PORT_RX = r"listening on tcp 127\.0\.0\.1:(\d+)"
LINE = b"y" * 30 + b"\r\n"


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    connections = 0


class _MiniSmtp(socketserver.StreamRequestHandler):
    """Greets, answers each line with ``250 <line>``, and closes on QUIT."""

    server: _Server

    def handle(self) -> None:
        type(self.server).connections += 1
        self.wfile.write(b"220 hi\r\n")
        for line in self.rfile:
            if line.strip() == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            self.wfile.write(b"250 " + line)


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        type(self.server).connections += 1  # type: ignore[attr-defined]
        while data := self.request.recv(4096):
            self.request.sendall(data)


class _Closer(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        pass


class _Silent(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.recv(4096)
        self.request.recv(4096)  # returns at EOF, when the client gives up


@contextmanager
def _serve(handler: type[socketserver.BaseRequestHandler]) -> Iterator[tuple[_Server, int]]:
    server_cls = type("S", (_Server,), {"connections": 0})
    server = server_cls(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    t.start()
    try:
        yield server, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        t.join(5)


class PortWaitTests(SynchronousTestCase):
    def test_listening(self) -> None:
        """A listening port is found at once."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(5)
            took = wait_for_port("127.0.0.1", s.getsockname()[1], timeout=5)
        self.assertLess(took, 1.0)

    def test_timeout(self) -> None:
        """A port nobody listens on raises TimeoutError after the timeout."""
        self.assertRaises(TimeoutError, wait_for_port, "127.0.0.1", free_port(), 0.2)

    def test_server_exited(self) -> None:
        """A server that died is reported at once, not after the timeout."""
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        proc.wait(10)
        self.assertRaises(RuntimeError, wait_for_port, "127.0.0.1", free_port(), 30, proc)


_HOG = (
    "import sys, subprocess\n"
    "if sys.argv[1] == 'child':\n"
    "    b = bytearray(80_000_000); b[::4096] = b'x' * len(b[::4096]); del b\n"
    "    sum(range(8_000_000))\n"
    "    print('ready', flush=True); sys.stdin.read()\n"
    "else:\n"
    "    p = subprocess.Popen([sys.executable, __file__, 'child'], stdin=subprocess.PIPE)\n"
    "    print('started', flush=True); p.wait()\n"
)


class RssTests(SynchronousTestCase):
    def test_peak_of_child_tree(self) -> None:
        """VmHWM keeps a freed 80 MB peak; the parent's RSS and CPU include its child's."""
        script = Path(self.mktemp())
        script.write_text(_HOG)
        parent = subprocess.Popen([sys.executable, str(script), "parent"],
                                  stdout=subprocess.PIPE, stdin=subprocess.PIPE)
        try:
            assert parent.stdout is not None
            self.assertEqual(parent.stdout.readline().strip(), b"started")
            self.assertEqual(parent.stdout.readline().strip(), b"ready")
            tree = process_tree(parent.pid)
            self.assertEqual(len(tree), 2)
            self.assertEqual(tree[0], parent.pid)
            child = tree[1]
            self.assertGreater(read_peak_rss(child), 80_000_000)
            self.assertGreater(read_peak_rss(parent.pid), 80_000_000)
            alone = read_peak_rss(parent.pid, include_children=False)
            self.assertLess(alone, 80_000_000)
            self.assertGreater(alone, 1_000_000)
            child_cpu = read_cpu_seconds(child)
            self.assertGreater(child_cpu, 0.05)
            self.assertGreaterEqual(read_cpu_seconds(parent.pid), child_cpu)
        finally:
            for pid in process_tree(parent.pid)[1:]:
                os.kill(pid, signal.SIGKILL)
            parent.wait(10)
            assert parent.stdin is not None and parent.stdout is not None
            parent.stdin.close()
            parent.stdout.close()

    def test_gone(self) -> None:
        """A process that no longer exists has no RSS (0), not an exception."""
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        proc.wait(10)
        self.assertEqual(read_peak_rss(proc.pid), 0)


class LoadTests(SynchronousTestCase):
    def test_echo(self) -> None:
        """Every client does its requests; one latency per request."""
        with _serve(_Echo) as (server, port):
            r = run_load("127.0.0.1", port, Dialogue([Step(LINE, len(LINE))]), 3, 20, 10.0)
        self.assertEqual((r.requests, r.errors, len(r.latencies), r.timed_out), (60, 0, 60, False))
        self.assertEqual(server.connections, 3)
        self.assertGreater(r.rps, 0)
        self.assertTrue(all(x > 0 for x in r.latencies))

    def test_dialogue_with_reconnects(self) -> None:
        """Greeting, setup, two-step requests, teardown; a new connection every 7 requests."""
        dialogue = Dialogue(
            request=[Step(b"MAIL\r\n", re.compile(rb"^250 MAIL\r\n\Z")),
                     Step(b"RCPT\r\n", b"\r\n")],
            greeting=Step(b"", b"\r\n"),
            setup=[Step(b"EHLO\r\n", b"\r\n")],
            teardown=[Step(b"QUIT\r\n", b"221 bye\r\n")],
            requests_per_connection=7,
        )
        with _serve(_MiniSmtp) as (server, port):
            r = run_load("127.0.0.1", port, dialogue, 2, 20, 10.0)
        self.assertEqual((r.requests, r.errors, r.timed_out), (40, 0, False))
        self.assertEqual(server.connections, 2 * 3)  # 7 + 7 + 6 per client

    def test_server_closes(self) -> None:
        """A connection closed by the server counts one error per client."""
        with _serve(_Closer) as (_, port):
            r = run_load("127.0.0.1", port, Dialogue([Step(LINE, len(LINE))]), 4, 5, 10.0)
        self.assertEqual((r.requests, r.errors), (0, 4))

    def test_time_cap(self) -> None:
        """A server that never answers is given up on at the wall-clock cap."""
        with _serve(_Silent) as (_, port):
            r = run_load("127.0.0.1", port, Dialogue([Step(LINE, len(LINE))]), 2, 5, 0.2)
        self.assertTrue(r.timed_out)
        self.assertEqual(r.requests, 0)
        self.assertGreaterEqual(r.elapsed, 0.2)
        self.assertLess(r.elapsed, 5.0)

    def test_http_response_complete(self) -> None:
        """Headers, then exactly Content-Length bytes of body; no length: headers only."""
        head = b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 5\r\n\r\n"
        self.assertFalse(http_response_complete(bytearray(head[:-2])))
        self.assertFalse(http_response_complete(bytearray(head + b"abcd")))
        self.assertTrue(http_response_complete(bytearray(head + b"abcde")))
        self.assertTrue(http_response_complete(bytearray(b"HTTP/1.1 204 No\r\n\r\n")))
        body_says = b"HTTP/1.1 200 OK\r\n\r\n\r\nContent-Length: 99"
        self.assertTrue(http_response_complete(bytearray(body_says)))

    def test_http_dialogue(self) -> None:
        """A function as ``until``: keep-alive HTTP requests against http.server."""

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                body = b"x" * 3000
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        req = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
        with _serve(Handler) as (_, port):
            r = run_load("127.0.0.1", port, Dialogue([Step(req, http_response_complete)]),
                         2, 10, 10.0)
        self.assertEqual((r.requests, r.errors, r.timed_out), (20, 0, False))

    def test_wait_until_quiet(self) -> None:
        """Waiting for an idle machine is bounded by max_wait (plus one window)."""
        start = time.monotonic()
        pct = wait_until_quiet(0.2, threshold=-1.0, window=0.1)  # never quiet enough
        took = time.monotonic() - start
        self.assertGreaterEqual(took, 0.2)
        self.assertLess(took, 2.0)
        self.assertGreaterEqual(pct, 0.0)

    def test_percentile(self) -> None:
        """Nearest-rank percentiles."""
        values = [float(i) for i in range(1, 101)]
        self.assertEqual(percentile(values, 50), 50.0)
        self.assertEqual(percentile(values, 99), 99.0)
        self.assertEqual(percentile(values, 100), 100.0)
        self.assertEqual(percentile([7.0], 99), 7.0)
        self.assertEqual(percentile([], 50), 0.0)


def _run(rps: float, rss: float = 10.0, cpu: float = 20.0, round_index: int = 0) -> RunResult:
    return RunResult(rps=rps, p50_ms=1.0, p99_ms=2.0, rss_mb=rss, srv_cpu_us_per_req=cpu,
                     others_cpu_pct=3.0,
                     requests=100, errors=0, elapsed=1.0, gen_cpu_us_per_req=5.0,
                     gen_cpu_pct=50.0, timed_out=False, round_index=round_index)


class TableTests(SynchronousTestCase):
    def test_medians_and_ratio(self) -> None:
        """Rows show medians; the ratio is to the baseline row; a skipped row says why."""
        results = [
            CaseResult("ours", [_run(300), _run(100), _run(200, rss=30)]),
            CaseResult("base", [_run(50), _run(100), _run(150)]),
            CaseResult("peer", skip_reason="not installed"),
        ]
        lines = format_table(results, baseline="base").splitlines()
        self.assertEqual(lines[0].split()[:3], ["name", "req/s", "p50"])
        self.assertEqual(lines[0].split()[-2:], ["errors", "ratio"])
        self.assertEqual(lines[2].split(), ["ours", "200", "1.00", "2.00", "10.0", "20.0", "5.0",
                                            "50", "3", "0", "2.00"])
        self.assertEqual(lines[3].split()[-1], "1.00")
        self.assertIn("skipped: not installed", lines[4])
        self.assertEqual(lines[5], "ratio: req/s relative to 'base'")
        self.assertEqual(len({len(line) for line in lines[:4]}), 1)  # aligned

    def test_no_baseline(self) -> None:
        """Without a baseline with runs, the ratio column is empty."""
        table = format_table([CaseResult("a", [_run(1000)])], baseline="missing")
        self.assertEqual(table.splitlines()[2].split()[-1], "-")
        self.assertEqual(len(table.splitlines()), 3)  # no "ratio:" footer
        self.assertIn("1,000", table)

    def test_quick(self) -> None:
        """--quick lowers requests and runs; explicit options still win."""
        parser = argparse.ArgumentParser()
        add_arguments(parser, clients=50, requests=2000, runs=5, quick_requests=200)
        self.assertEqual(params_from_args(parser.parse_args([])),
                         LoadParams(50, 2000, 60.0, 5, settle=10.0, max_others=30.0))
        args = parser.parse_args(["--quick", "--settle", "0", "--max-others", "0"])
        self.assertEqual(params_from_args(args), LoadParams(50, 200, 60.0, 1))
        self.assertEqual(params_from_args(parser.parse_args(["--quick", "--runs", "2"])).runs, 2)


class GroupTests(SynchronousTestCase):
    def test_case_params(self) -> None:
        """A case's own client and request counts replace the options'; the rest stays."""
        load = dialogue_load(Dialogue([Step(b"x", 1)]))
        params = LoadParams(50, 2000, 60.0, 5, settle=1.0, max_others=30.0)
        self.assertEqual(case_params(Case("a", ServerSpec("a", []), load), params), params)
        big = Case("b", ServerSpec("b", []), load, clients=2000, requests=7)
        self.assertEqual(case_params(big, params),
                         LoadParams(2000, 7, 60.0, 5, settle=1.0, max_others=30.0))
        self.assertEqual(case_params(Case("c", ServerSpec("c", []), load, requests=3),
                                     params).clients, 50)

    def test_paired_ratios(self) -> None:
        """Each run is divided by the base's run of the same round; unpaired rounds drop out."""
        row = CaseResult("ours", [_run(300, round_index=0), _run(100, round_index=1),
                                  _run(50, cpu=30.0, round_index=3)])
        base = CaseResult("base", [_run(100, round_index=0), _run(200, round_index=1),
                                   _run(0, round_index=2), _run(10, cpu=20.0, round_index=3)])
        self.assertEqual(paired_ratios(row, base), [3.0, 0.5, 5.0])
        self.assertEqual(paired_ratios(row, base, "srv_cpu_us_per_req"), [1.0, 1.0, 1.5])
        self.assertEqual(paired_ratios(row, CaseResult("empty")), [])

    def test_rounds_recorded(self) -> None:
        """run_bench tells every run its round, in every case."""
        self.patch(harness, "run_case_once", lambda case, params: _run(1.0))
        load = dialogue_load(Dialogue([Step(b"x", 1)]))
        cases = [Case(n, ServerSpec(n, []), load, group=n.upper()) for n in "ab"]
        results = run_bench(cases, LoadParams(1, 1, 1.0, 3))
        for r in results:
            self.assertEqual([x.round_index for x in r.runs], [0, 1, 2])
        self.assertEqual([r.group for r in results], ["A", "B"])

    def test_raise_nofile_limit(self) -> None:
        """The soft limit is raised to what is needed, never lowered, never past the hard one."""
        code = (
            "import resource, sys; sys.path.insert(0, sys.argv[1]); "
            "from bench.harness import raise_nofile_limit as r; "
            "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 512)); "
            "a = r(300); b = r(100); "
            "s = resource.getrlimit(resource.RLIMIT_NOFILE); "
            "\ntry:\n r(1000)\nexcept ValueError as e:\n c = str(e)\n"
            "print(a, b, s[0], s[1], c, sep='|')"
        )
        out = subprocess.run([sys.executable, "-c", code, str(REPO)], capture_output=True,
                             text=True, check=True).stdout.strip()
        self.assertEqual(out.split("|"),
                         ["300", "300", "300", "512",
                          "1000 file descriptors needed, the hard limit is 512"])
        self.assertGreaterEqual(raise_nofile_limit(1), 1)


class RetryTests(SynchronousTestCase):
    def _bench(self, others: list[float], max_others: float) -> tuple[CaseResult, int]:
        calls: list[float] = []

        def fake_run(case: Case, params: LoadParams) -> RunResult:
            r = _run(100.0 + len(calls))
            r.others_cpu_pct = others[len(calls)]
            calls.append(r.others_cpu_pct)
            return r

        self.patch(harness, "run_case_once", fake_run)
        case = Case("c", ServerSpec("c", []), dialogue_load(Dialogue([Step(b"x", 1)])))
        [res] = run_bench([case], LoadParams(1, 1, 1.0, 1, max_others=max_others))
        return res, len(calls)

    def test_noisy_runs_redone(self) -> None:
        """A disturbed run is redone twice at most and the quietest attempt kept."""
        res, calls = self._bench([90.0, 20.0, 50.0, 0.0], max_others=10.0)
        self.assertEqual(calls, 3)
        self.assertEqual([r.others_cpu_pct for r in res.runs], [20.0])
        self.assertEqual(res.runs[0].rps, 101.0)

    def test_quiet_run_kept(self) -> None:
        """A quiet run, or max_others=0, means one attempt."""
        self.assertEqual(self._bench([5.0, 0.0], max_others=10.0)[1], 1)
        self.assertEqual(self._bench([95.0, 0.0], max_others=0.0)[1], 1)


class EndToEndTests(SynchronousTestCase):
    def test_stop_escalates(self) -> None:
        """A server that ignores SIGTERM is killed after the stop timeout."""
        code = ("import signal, socket, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
                "print('listening on tcp 127.0.0.1:%d' % s.getsockname()[1], flush=True); "
                "time.sleep(60)")
        server = ServerProcess(ServerSpec("stubborn", [sys.executable, "-c", code],
                                          port_regex=PORT_RX, stop_timeout=0.3))
        port = server.wait_ready()
        self.assertGreater(port, 0)
        self.assertEqual(server.stop(), -signal.SIGKILL)

    def test_failed_start(self) -> None:
        """A server that exits at once is recorded as a failed run with its output."""
        spec = ServerSpec("broken", [sys.executable, "-c", "print('boom'); raise SystemExit(3)"],
                          port_regex=PORT_RX)
        load = dialogue_load(Dialogue([Step(LINE, len(LINE))]))
        [res] = run_bench([Case("broken", spec, load)], LoadParams(1, 1, 5.0, 1))
        self.assertEqual(res.runs, [])
        self.assertEqual(len(res.failures), 1)
        self.assertIn("boom", res.failures[0])

    def test_tiny_bench(self) -> None:
        """The whole path against the stdlib echo subprocess: runs, medians, table, JSON."""
        cases = [
            Case("stdlib", ServerSpec("stdlib", STDLIB_ECHO, port_regex=PORT_RX),
                 dialogue_load(Dialogue([Step(LINE, len(LINE))]))),
            Case("stream", ServerSpec("stream", [*STDLIB_ECHO, "--stream"], port_regex=PORT_RX),
                 dialogue_load(Dialogue([Step(LINE, len(LINE))]))),
        ]
        parser = argparse.ArgumentParser()
        add_arguments(parser, clients=50, requests=2000)
        out_json = self.mktemp()
        args = parser.parse_args(["--quick", "--clients", "3", "--requests", "15", "--runs", "2",
                                  "--settle", "0", "--max-others", "0", "--json", out_json])
        printed: list[str] = []
        results = main(cases, args, baseline="stdlib", title="tiny", out=printed.append)
        for r in results:
            self.assertEqual(len(r.runs), 2, r.failures)
            for run in r.runs:
                self.assertEqual((run.requests, run.errors), (45, 0))
                self.assertGreater(run.rss_mb, 5)
                self.assertGreater(run.p99_ms, 0)
        text = "\n".join(printed)
        self.assertIn("3 clients x 15 requests, 2 run(s)", text)
        self.assertRegex(text, r"(?m)^stdlib\s+[\d,]+\s.*\s1\.00$")
        doc = json.loads(Path(out_json).read_text())
        self.assertEqual([r["name"] for r in doc["results"]], ["stdlib", "stream"])
        self.assertEqual(doc["results"][0]["ratio"], 1.0)
        self.assertEqual(len(doc["results"][1]["runs"]), 2)
        self.assertEqual(doc["params"], {"clients": 3, "requests": 15, "time_limit": 60.0,
                                         "runs": 2, "settle": 0.0, "max_others": 0.0})

    def test_two_groups(self) -> None:
        """Rows in two groups: one table each, their own sizes and baselines, one JSON."""
        spec = ServerSpec("stdlib", STDLIB_ECHO, port_regex=PORT_RX)
        load = dialogue_load(Dialogue([Step(LINE, len(LINE))]))
        cases = [
            Case("small", spec, load, group="one"),
            Case("many", spec, load, group="two", clients=6, requests=4),
            Case("many too", spec, load, group="two", clients=6, requests=4),
        ]
        parser = argparse.ArgumentParser()
        add_arguments(parser, clients=50, requests=2000)
        out_json = self.mktemp()
        args = parser.parse_args(["--clients", "2", "--requests", "5", "--runs", "2",
                                  "--settle", "0", "--max-others", "0", "--json", out_json])
        printed: list[str] = []
        results = main(cases, args, baseline={"one": "small", "two": "many"}, title="groups",
                       out=printed.append)
        self.assertEqual([[(x.requests, x.errors, x.round_index) for x in r.runs]
                          for r in results],
                         [[(10, 0, 0), (10, 0, 1)], [(24, 0, 0), (24, 0, 1)],
                          [(24, 0, 0), (24, 0, 1)]])
        text = "\n".join(printed)
        self.assertIn("one: 2 clients x 5 requests, medians of 2 run(s):", text)
        self.assertIn("two: 6 clients x 4 requests, medians of 2 run(s):", text)
        self.assertRegex(text, r"(?m)^small\s+[\d,]+\s.*\s1\.00$")
        self.assertRegex(text, r"(?m)^many\s+[\d,]+\s.*\s1\.00$")
        self.assertIn("ratio: req/s relative to 'many'", text)
        doc = json.loads(Path(out_json).read_text())
        self.assertEqual([(r["name"], r["group"], r["clients"], r["requests"], r["ratio"] is None)
                          for r in doc["results"]],
                         [("small", "one", 2, 5, False), ("many", "two", 6, 4, False),
                          ("many too", "two", 6, 4, False)])
        self.assertEqual(doc["results"][1]["ratio"], 1.0)
        self.assertEqual(doc["baseline"], {"one": "small", "two": "many"})


class SockservSummaryTests(SynchronousTestCase):
    def test_targets(self) -> None:
        """bench/sockserv.py's summary: per-round ratios, their medians, met or missed."""
        from bench import sockserv

        conns = sockserv.CONNS_SUFFIX
        results = [
            CaseResult(sockserv.ASYNC, [_run(1, cpu=c, round_index=i)
                                        for i, c in enumerate((10.0, 12.0, 9.0))]),
            CaseResult(sockserv.BASELINE, [_run(1, cpu=c, round_index=i)
                                           for i, c in enumerate((10.0, 10.0, 10.0))]),
            CaseResult(sockserv.TWISTED, [_run(1, cpu=c, round_index=i)
                                          for i, c in enumerate((8.0, 10.0, 10.0))]),
            CaseResult(sockserv.ASYNC + conns, [_run(r, rss=50.0, round_index=i)
                                                for i, r in enumerate((300, 200))]),
            CaseResult(sockserv.BASELINE + conns, [_run(100, rss=100.0, round_index=i)
                                                   for i in range(2)]),
        ]
        lines, figures = sockserv.summarize(results)
        self.assertEqual(figures["a_cpu_vs_stdlib"], {"runs": [1.0, 1.2, 0.9], "median": 1.0})
        self.assertEqual(figures["a_cpu_vs_twisted"],
                         {"runs": [1.25, 1.2, 0.9], "median": 1.2})
        self.assertEqual(figures["b_rps_vs_stdlib"], {"runs": [3.0, 2.0], "median": 2.5})
        self.assertEqual(figures["b_rss_vs_stdlib"], {"runs": [0.5, 0.5], "median": 0.5})
        self.assertIn("median 1.00 (target <= 1.00: met)", lines[0])
        self.assertIn("median 1.20 (target <= 1.15: MISSED)", lines[1])
        self.assertIn("median 2.50 (target >= 1.50: met)", lines[2])
        self.assertIn("(target < 1: met)", lines[3])
        self.assertEqual(sockserv.summarize(results[:1]), ([], {}))
