"""A real browser (Debian's headless Chromium) loads a listing and posts forms to CGI and WSGI."""

from __future__ import annotations

import html
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, TestCase

from netproto_twisted.http import form_from_environ
from netproto_twisted.testing import serve_http

from .helpers import reactor

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

FORM_PAGE = """<!DOCTYPE html><html><body>
<form id="f" method="post" action="{action}" enctype="{enctype}">
<input name="who" value="chromium &amp; co"><textarea name="note">line 1
line 2</textarea></form>
<script>document.getElementById("f").submit()</script></body></html>"""

CGI_SCRIPT = f"""#!{sys.executable}
import os, sys, urllib.parse
body = sys.stdin.buffer.read(int(os.environ.get("CONTENT_LENGTH") or 0))
fields = urllib.parse.parse_qs(body.decode())
sys.stdout.write("Content-Type: text/plain\\r\\n\\r\\n")
sys.stdout.write("cgi saw " + fields["who"][0] + " / " + repr(fields["note"][0]))
"""


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    form = form_from_environ(environ)
    text = f"wsgi saw {form.getfirst('who')} / {form.getfirst('note')!r}"
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [text.encode()]


def dump_dom(url: str, profile: str) -> str:
    assert CHROMIUM is not None
    argv = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-extensions", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
        "--virtual-time-budget=5000", "--dump-dom", url,
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    return done.stdout.decode("utf-8", "replace")


class ChromiumTests(TestCase):
    timeout = 120

    async def test_listing_and_forms(self) -> None:
        if CHROMIUM is None:
            raise SkipTest("chromium is not installed")
        base = Path(self.mktemp()).absolute()
        www, cgi = base / "www", base / "cgi"
        (www / "sub dir").mkdir(parents=True)
        cgi.mkdir()
        (www / "<b>bold&.txt").write_text("x")
        (www / "cgi.html").write_text(
            FORM_PAGE.format(
                action="/cgi-bin/echo.py", enctype="application/x-www-form-urlencoded"
            )
        )
        (www / "wsgi.html").write_text(
            FORM_PAGE.format(action="/app/submit", enctype="multipart/form-data")
        )
        script = cgi / "echo.py"
        script.write_text(CGI_SCRIPT)
        script.chmod(0o755)
        server = await serve_http(reactor, path=www, cgi_dir=cgi, app=wsgi_app)
        self.addCleanup(server.stop)
        profile = str(base / "profile")

        listing = await deferToThread(dump_dom, server.url("/"), profile)
        self.assertIn("Index of /", listing)
        self.assertIn("&lt;b&gt;bold&amp;.txt", listing)  # escaped: no <b> element
        self.assertNotIn("<b>", listing)
        self.assertIn('href="sub%20dir/"', listing)

        posted = await deferToThread(dump_dom, server.url("/cgi.html"), profile)
        self.assertIn(
            html.escape("cgi saw chromium & co / 'line 1\\r\\nline 2'", quote=False), posted
        )

        posted = await deferToThread(dump_dom, server.url("/wsgi.html"), profile)
        self.assertIn(
            html.escape("wsgi saw chromium & co / 'line 1\\r\\nline 2'", quote=False), posted
        )
