"""CGI scripts through the server: meta-variables, bodies, NPH, limits, failures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from netproto_twisted.testing import ServedSite, serve_http

from .helpers import fetch, raw_exchange, reactor

PY = sys.executable

SCRIPTS = {
    "env.py": f"""#!{PY}
import json, os, sys
body = sys.stdin.buffer.read()
print("Content-Type: application/json")
print("X-Script: yes")
print()
env = {{k: v for k, v in os.environ.items()}}
env["BODY_LENGTH"] = len(body)
env["BODY_HEAD"] = body[:20].decode("latin-1")
print(json.dumps(env))
""",
    "status.sh": "#!/bin/sh\nprintf 'Status: 418 I am a teapot\\r\\n"
    "Content-Type: text/plain\\r\\n\\r\\nshort and stout'\n",
    "redirect.sh": "#!/bin/sh\nprintf 'Location: http://example.invalid/x\\n\\n'\n",
    "nph-raw.sh": "#!/bin/sh\nprintf 'HTTP/1.1 203 Raw\\r\\n"
    "Content-Type: text/plain\\r\\n\\r\\nnph body'\n",
    "noheaders.sh": "#!/bin/sh\necho 'no header block'\nexit 3\n",
    "crash.sh": "#!/bin/sh\necho oops >&2\nexit 1\n",
    "hang.sh": "#!/bin/sh\nexec sleep 60\n",
    "flood.py": f"#!{PY}\nimport sys\n"
    "sys.stdout.write('Content-Type: text/plain\\n\\n')\nsys.stdout.flush()\n"
    "while True:\n    sys.stdout.write('x' * 65536)\n",
    "flood-head.py": f"#!{PY}\nimport sys\n"
    "while True:\n    sys.stdout.write('X-A: ' + 'a' * 1000 + '\\n')\n",
    "stream.py": f"#!{PY}\nimport sys\nsys.stdout.write('Content-Type: text/plain\\n\\n')\n"
    "for i in range(100):\n    sys.stdout.write(str(i) * 1000)\n",
    "notexec.txt": "not a script",
}


class CGITests(TestCase):
    def setUp(self) -> None:
        self.cgi = Path(self.mktemp()).absolute()
        self.cgi.mkdir(parents=True)
        for name, text in SCRIPTS.items():
            path = self.cgi / name
            path.write_text(text)
            path.chmod(0o644 if name.endswith(".txt") else 0o755)
        self.events: list[dict[str, object]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    async def serve(self, **kwargs: object) -> ServedSite:
        server = await serve_http(reactor, cgi_dir=self.cgi, **kwargs)  # type: ignore[arg-type]
        self.addCleanup(server.stop)
        return server

    def logged(self, text: str) -> bool:
        return any(text in str(e.get("reason", "")) for e in self.events)

    async def test_meta_variables_and_body(self) -> None:
        server = await self.serve()
        body = b"a=1&b=" + b"z" * 300_000
        reply = await fetch(
            server.url("/cgi-bin/env.py/extra/path?q=1&r=%20"),
            data=body,
            Content_Type="application/x-www-form-urlencoded",
            X_Custom="hi",
        )
        self.assertEqual(reply.status, 200)
        self.assertEqual(reply.headers["X-Script"], "yes")
        env = json.loads(reply.body)
        self.assertEqual(env["GATEWAY_INTERFACE"], "CGI/1.1")
        self.assertEqual(env["REQUEST_METHOD"], "POST")
        self.assertEqual(env["SCRIPT_NAME"], "/cgi-bin/env.py")
        self.assertEqual(env["PATH_INFO"], "/extra/path")
        self.assertEqual(env["PATH_TRANSLATED"], str(self.cgi / "extra/path"))
        self.assertEqual(env["QUERY_STRING"], "q=1&r=%20")
        self.assertEqual(env["CONTENT_TYPE"], "application/x-www-form-urlencoded")
        self.assertEqual(env["CONTENT_LENGTH"], str(len(body)))
        self.assertEqual(env["BODY_LENGTH"], len(body))
        self.assertEqual(env["BODY_HEAD"], "a=1&b=zzzzzzzzzzzzzz")
        self.assertEqual(env["REMOTE_ADDR"], "127.0.0.1")
        self.assertEqual(env["SERVER_PORT"], str(server.port))
        self.assertEqual(env["SERVER_PROTOCOL"], "HTTP/1.1")
        self.assertEqual(env["HTTP_X_CUSTOM"], "hi")
        self.assertNotIn("HTTP_PROXY", env)

    async def test_proxy_header_is_not_passed(self) -> None:
        server = await self.serve()
        reply = await fetch(server.url("/cgi-bin/env.py"), Proxy="http://evil:1")
        self.assertNotIn("HTTP_PROXY", json.loads(reply.body))

    async def test_status_location_and_streaming(self) -> None:
        server = await self.serve()
        teapot = await fetch(server.url("/cgi-bin/status.sh"))
        self.assertEqual((teapot.status, teapot.body), (418, b"short and stout"))
        moved = await fetch(server.url("/cgi-bin/redirect.sh"))
        self.assertEqual(
            (moved.status, moved.headers["Location"]), (302, "http://example.invalid/x")
        )
        streamed = await fetch(server.url("/cgi-bin/stream.py"))
        self.assertEqual(streamed.body, b"".join(str(i).encode() * 1000 for i in range(100)))

    async def test_nph_output_goes_out_untouched(self) -> None:
        server = await self.serve()
        answer = await raw_exchange(
            server.port, b"GET /cgi-bin/nph-raw.sh HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        self.assertEqual(answer, b"HTTP/1.1 203 Raw\r\nContent-Type: text/plain\r\n\r\nnph body")

    async def test_failures_give_502_and_a_log_line(self) -> None:
        server = await self.serve()
        reply = await fetch(server.url("/cgi-bin/noheaders.sh"))
        self.assertEqual(reply.status, 502)
        self.assertTrue(self.logged("before a complete header block"))
        crash = await fetch(server.url("/cgi-bin/crash.sh"))
        self.assertEqual(crash.status, 502)
        self.assertEqual((await fetch(server.url("/cgi-bin/notexec.txt"))).status, 403)
        self.assertEqual((await fetch(server.url("/cgi-bin/missing"))).status, 404)
        self.assertEqual((await fetch(server.url("/cgi-bin/..%2fx"))).status, 404)

    async def test_a_script_that_never_ends_is_killed(self) -> None:
        server = await self.serve(cgi_timeout=0.5)
        reply = await fetch(server.url("/cgi-bin/hang.sh"))
        self.assertEqual(reply.status, 502)
        self.assertTrue(self.logged("ran longer than 0.5 s"))

    async def test_output_flood_is_cut(self) -> None:
        server = await self.serve(cgi_max_output=1_000_000)
        answer = await raw_exchange(
            server.port, b"GET /cgi-bin/flood.py HTTP/1.1\r\nHost: x\r\n\r\n", limit=10_000_000
        )
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"))
        self.assertLess(len(answer), 1_100_000)
        self.assertTrue(self.logged("wrote more than 1000000 bytes"))
        head = await fetch(server.url("/cgi-bin/flood-head.py"))
        self.assertEqual(head.status, 502)
        self.assertTrue(self.logged("header block too long"))
