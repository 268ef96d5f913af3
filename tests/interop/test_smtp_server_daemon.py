"""``twistd -n netproto-smtp`` as users run it: smtplib in, Maildir out; SIGTERM; bad options."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import signal
import smtplib
import ssl
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.passwords import PasswordFile
from tests.twistd import Daemon, run_twistd, usage_error_exit

TIMEOUT = 20.0


class DaemonTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.cwd = Path(self.mktemp()).absolute()
        self.cwd.mkdir(parents=True)
        PasswordFile(self.cwd / "users", iterations=4096).add("alice", "secret-pw")

    def test_delivers_and_submits(self) -> None:
        daemon = Daemon(
            [
                "netproto-smtp",
                "--listen", "tcp:0:interface=127.0.0.1",
                "--submission", "tcp:0:interface=127.0.0.1",
                "--domain", "example.org", "--hostname", "mx.example.org",
                "--users", "users", "--maildir", "mail", "--queue", "queue",
                "--data-dir", "data",
                # Relay attempts stay on this machine (a closed port): no DNS, no internet.
                "--smarthost", "127.0.0.1:9", "--smarthost-tls", "none",
            ],
            self.cwd,
        )  # fmt: skip
        self.addCleanup(daemon.stop)
        mx = int(daemon.wait_for(r"smtp listening on tcp 127\.0\.0\.1:(\d+)", TIMEOUT).group(1))
        sub = int(
            daemon.wait_for(r"submission listening on tcp 127\.0\.0\.1:(\d+)", TIMEOUT).group(1)
        )
        with smtplib.SMTP("127.0.0.1", mx, timeout=TIMEOUT) as s:
            refused = s.sendmail(
                "a@client.example", ["alice@example.org"], b"Subject: via twistd\r\n\r\nhi\r\n"
            )
            self.assertEqual(refused, {})
            s.mail("a@client.example")
            self.assertEqual(s.rcpt("someone@far.example")[0], 554)  # not an open relay
        [stored] = list((self.cwd / "mail" / "alice" / "new").iterdir())
        self.assertIn(b"by mx.example.org", stored.read_bytes())
        context = ssl.create_default_context(
            cafile=str(self.cwd / "data" / "tls" / "dev-cert.pem")
        )
        context.check_hostname = False
        with smtplib.SMTP("127.0.0.1", sub, timeout=TIMEOUT) as s:
            s.starttls(context=context)
            s.login("alice", "secret-pw")
            self.assertEqual(
                s.sendmail("alice@example.org", ["x@far.example"], b"Subject: out\r\n\r\n"), {}
            )
        # Accepted means spooled: the queue holds the entry for the relay.
        entries = list((self.cwd / "queue" / "entries").iterdir())
        self.assertTrue(any(p.suffix == ".msg" for p in entries), entries)
        self.assertIn(daemon.stop(), (0, -signal.SIGTERM))
        self.assertNotIn("Traceback", daemon.output())

    def test_bad_option_is_one_line(self) -> None:
        result = run_twistd(["netproto-smtp", "--relay-network", "300.1.1.1/8"], self.cwd)
        self.assertTrue(usage_error_exit(result.returncode))
        self.assertIn("300.1.1.1/8", result.stderr + result.stdout)

    def test_port_in_use_exits(self) -> None:
        import socket

        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            result = run_twistd(
                [
                    "netproto-smtp", "--listen", f"tcp:{port}:interface=127.0.0.1",
                    "--data-dir", "data", "--maildir", "mail", "--queue", "queue",
                ],
                self.cwd,
            )  # fmt: skip
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("netproto-smtp", result.stdout + result.stderr)
