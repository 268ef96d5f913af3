"""netproto_twisted.browser: BROWSER honoured, commands run without a shell, the reactor free."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from netproto_twisted.browser import browser_commands, open_url

URL = "http://127.0.0.1:8080/a b?x=1&y=$(touch /tmp/never)"


class CommandTests(SynchronousTestCase):
    def test_commands(self) -> None:
        env = {"BROWSER": os.pathsep.join(["firefox --new-tab", "'my browser' %s --x", "", "w3m"])}
        self.assertEqual(
            browser_commands(URL, env),
            [["firefox", "--new-tab", URL], ["my browser", URL, "--x"], ["w3m", URL]],
        )
        self.assertEqual(browser_commands(URL, {}), [])
        self.assertEqual(browser_commands(URL, {"BROWSER": "'unbalanced"}), [])


class OpenTests(TestCase):
    def script(self, name: str, status: int) -> Path:
        base = Path(self.mktemp()).absolute()
        base.mkdir(parents=True, exist_ok=True)
        path = base / name
        path.write_text(
            f"#!{sys.executable}\nimport sys\n"
            f"open({str(base / (name + '.out'))!r}, 'w').write(sys.argv[1])\nsys.exit({status})\n"
        )
        path.chmod(0o755)
        return path

    async def test_first_command_that_succeeds_wins(self) -> None:
        bad, good = self.script("bad", 1), self.script("good", 0)
        env = {"BROWSER": os.pathsep.join([str(bad), f"{good} %s"])}
        self.assertTrue(await open_url(reactor, URL, environ=env))
        self.assertEqual(Path(str(good) + ".out").read_text(), URL)  # one argument, no shell
        self.assertEqual(Path(str(bad) + ".out").read_text(), URL)
        self.assertFalse(os.path.exists("/tmp/never"))

    async def test_all_fail(self) -> None:
        bad = self.script("bad", 3)
        env = {"BROWSER": os.pathsep.join([str(bad), "/nonexistent/browser"])}
        self.assertFalse(await open_url(reactor, URL, environ=env))
