"""Tests for the ``netproto`` command (netproto_twisted.cli and its ``user`` subcommand)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted import cli
from netproto_twisted.core import passwords
from netproto_twisted.core.passwords import PasswordFile

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "netproto"


class MainTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.file = str(self.dir / "users")
        self.prompts: list[str] = []

    def run_cli(
        self, *argv: str, stdin: str = "", answers: tuple[str, ...] = ()
    ) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdin", io.StringIO(stdin))
        self.patch(sys, "stdout", out)
        self.patch(sys, "stderr", err)
        replies = list(answers)

        def fake_getpass(prompt: str = "") -> str:
            self.prompts.append(prompt)
            if not replies:
                raise EOFError
            return replies.pop(0)

        self.patch(passwords.getpass, "getpass", fake_getpass)
        code = cli.main(list(argv))
        return code, out.getvalue(), err.getvalue()

    def add(self, name: str, password: str = "pw", *extra: str) -> tuple[int, str, str]:
        return self.run_cli(
            "user",
            "add",
            "--file",
            self.file,
            "--iterations",
            "4096",
            "--password-stdin",
            *extra,
            name,
            stdin=password + "\n",
        )

    def test_add_and_list(self) -> None:
        self.assertEqual(self.add("bob", "hunter2"), (0, "added user bob\n", ""))
        self.assertEqual(self.add("alice")[0], 0)
        self.assertEqual(
            self.run_cli("user", "list", "--file", self.file), (0, "alice\nbob\n", "")
        )
        record = PasswordFile(self.file).scram_record("bob")
        assert record is not None
        self.assertTrue(record.check_password("hunter2"))  # the newline was not stored
        self.assertEqual(record.iterations, 4096)

    def test_change_password(self) -> None:
        self.add("bob", "one")
        self.assertEqual(self.add("bob", "two")[1], "changed password of user bob\n")
        record = PasswordFile(self.file).scram_record("bob")
        assert record is not None
        self.assertTrue(record.check_password("two"))

    def test_cram_md5_flag(self) -> None:
        self.add("tim", "secret", "--cram-md5")
        self.add("bob", "secret")
        pf = PasswordFile(self.file)
        self.assertEqual(pf.cram_md5_secret("tim"), b"secret")
        self.assertIsNone(pf.cram_md5_secret("bob"))

    def test_prompt_twice(self) -> None:
        code, out, _ = self.run_cli(
            "user",
            "add",
            "--file",
            self.file,
            "--iterations",
            "4096",
            "bob",
            answers=("pw1", "pw1"),
        )
        self.assertEqual((code, out), (0, "added user bob\n"))
        self.assertEqual(len(self.prompts), 2)

    def test_prompt_mismatch(self) -> None:
        code, out, err = self.run_cli(
            "user", "add", "--file", self.file, "bob", answers=("a", "b")
        )
        self.assertEqual((code, out), (2, ""))
        self.assertEqual(err, "netproto: error: the passwords do not match\n")
        self.assertFalse(os.path.exists(self.file))

    def test_no_tty(self) -> None:
        code, _, err = self.run_cli("user", "add", "--file", self.file, "bob")
        self.assertEqual(code, 2)
        self.assertIn("--password-stdin", err)

    def test_errors_are_one_line(self) -> None:
        self.add("bob")
        cases = [
            (("user", "remove", "--file", self.file, "carol"), "no such user: carol"),
            (("user", "remove", "--file", self.file + "x", "bob"), "no such password file"),
            (("user", "list", "--file", self.file + "x"), "no such password file"),
            (("user", "remove", "--file", self.file, "a:b"), "invalid user name"),
        ]
        for argv, message in cases:
            code, out, err = self.run_cli(*argv)
            self.assertEqual((code, out), (2, ""), argv)
            self.assertEqual(err.count("\n"), 1, err)
            self.assertTrue(err.startswith("netproto: error: "), err)
            self.assertIn(message, err)
        for name, password, message in [
            ("a b", "pw", "invalid user name"),
            ("bob", "", "empty password"),
        ]:
            code, _, err = self.add(name, password)
            self.assertEqual(code, 2)
            self.assertIn(message, err)

    def test_remove(self) -> None:
        self.add("bob")
        self.add("carol")
        self.assertEqual(
            self.run_cli("user", "remove", "--file", self.file, "bob"),
            (0, "removed user bob\n", ""),
        )
        self.assertEqual(PasswordFile(self.file).names(), ["carol"])

    def test_unwritable_file(self) -> None:
        blocker = self.dir / "blocker"
        blocker.write_text("")
        code, _, err = self.run_cli(
            "user",
            "add",
            "--file",
            str(blocker / "users"),
            "--password-stdin",
            "bob",
            stdin="pw\n",
        )
        self.assertEqual(code, 2)
        self.assertTrue(err.startswith("netproto: error: "))

    def test_corrupt_file_is_not_overwritten(self) -> None:
        Path(self.file).write_text("this is not a password file\n")
        code, _, err = self.add("bob")
        self.assertEqual(code, 2)
        self.assertIn(":1", err)
        self.assertEqual(Path(self.file).read_text(), "this is not a password file\n")

    def test_usage_errors(self) -> None:
        self.assertEqual(self.run_cli()[0], 2)
        self.assertEqual(self.run_cli("user")[0], 2)
        self.assertEqual(self.run_cli("user", "add", "--iterations", "100", "bob")[0], 2)
        code, out, _ = self.run_cli("--help")
        self.assertEqual(code, 0)
        self.assertIn("user", out)

    def test_default_file(self) -> None:
        self.assertEqual(passwords.DEFAULT_PASSWORD_FILE, os.path.join("netproto-data", "users"))
        cwd = os.getcwd()
        os.chdir(self.dir)
        self.addCleanup(os.chdir, cwd)
        self.assertEqual(
            self.run_cli("user", "add", "--password-stdin", "bob", stdin="pw\n")[0], 0
        )
        self.assertEqual(PasswordFile(self.dir / "netproto-data" / "users").names(), ["bob"])

    def test_registry(self) -> None:
        self.assertIn("netproto_twisted.core.passwords", cli.COMMAND_MODULES)
        parser = cli.build_parser()
        args = parser.parse_args(["user", "list"])
        self.assertEqual(args.file, passwords.DEFAULT_PASSWORD_FILE)


class SubprocessTests(SynchronousTestCase):
    """The command as users run it: a separate process, real stdin, exit status."""

    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp()
        self.env = dict(os.environ, PYTHONPATH=str(ROOT))

    def run_process(self, argv: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            cwd=self.dir,
            env=self.env,
            timeout=60,
            check=False,
        )

    def test_python_m(self) -> None:
        base = [sys.executable, "-m", "netproto_twisted.cli", "user"]
        done = self.run_process(
            [*base, "add", "--password-stdin", "--iterations", "4096", "bob"], "pw\n"
        )
        self.assertEqual((done.returncode, done.stdout), (0, "added user bob\n"))
        done = self.run_process([*base, "remove", "nobody"])
        self.assertEqual(done.returncode, 2)
        self.assertEqual(done.stderr, "netproto: error: no such user: nobody\n")
        self.assertNotIn("Traceback", done.stderr)

    def test_installed_script(self) -> None:
        if not SCRIPT.exists():
            self.skipTest(f"{SCRIPT} is not installed")
        done = self.run_process([str(SCRIPT), "user", "add", "--password-stdin", "alice"], "pw\n")
        self.assertEqual(done.returncode, 0, done.stderr)
        done = self.run_process([str(SCRIPT), "user", "list"])
        self.assertEqual((done.returncode, done.stdout), (0, "alice\n"))
