"""Tests for netproto_twisted.core.passwords: the file, SCRAM records, SASLprep, the checker."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from netproto_twisted.core import passwords
from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.login_cache import VerifiedPasswordCache
from netproto_twisted.core.passwords import (
    CramMD5Credentials,
    InvalidPassword,
    InvalidUserName,
    IScramStore,
    NoSuchUser,
    PasswordFile,
    PasswordFileChecker,
    ScramCredentials,
    ScramRecord,
    saslprep,
    synchronous_runner,
    thread_runner,
    validate_name,
    validate_password,
)


def tmpdir() -> Path:
    return Path(tempfile.mkdtemp())


class SaslprepTests(SynchronousTestCase):
    def test_rfc4013_examples(self) -> None:
        self.assertEqual(saslprep("I\u00adX"), "IX")  # soft hyphen mapped to nothing
        self.assertEqual(saslprep("user"), "user")
        self.assertEqual(saslprep("USER"), "USER")  # case preserved
        self.assertEqual(saslprep("\u00aa"), "a")  # NFKC
        self.assertEqual(saslprep("\u2168"), "IX")
        self.assertEqual(saslprep("a\u00a0b"), "a b")  # non-ASCII space mapped to space
        for bad in ("\u0007", "\u0627\u0031", "\ue000", "a\u200eb"):
            with self.assertRaises(ValueError):
                saslprep(bad)

    @given(st.text(st.characters(min_codepoint=0, max_codepoint=0x7F)))
    def test_ascii_shortcut_agrees_with_the_tables(self, text: str) -> None:
        def outcome(f: Callable[..., str], *args: Any) -> str | type[Exception]:
            try:
                return f(*args)
            except ValueError:
                return ValueError

        for unassigned in (False, True):
            self.assertEqual(
                outcome(lambda t, u: saslprep(t, allow_unassigned=u), text, unassigned),
                outcome(passwords._saslprep_tables, text, unassigned),
            )

    def test_unassigned(self) -> None:
        with self.assertRaises(ValueError):
            saslprep("\u0221")  # unassigned in Unicode 3.2
        self.assertEqual(saslprep("\u0221", allow_unassigned=True), "\u0221")


class NameTests(SynchronousTestCase):
    def test_valid(self) -> None:
        self.assertEqual(validate_name("alice"), "alice")
        self.assertEqual(validate_name("Alice@example.org"), "Alice@example.org")
        self.assertEqual(validate_name("\uff21lice"), "Alice")  # fullwidth A, NFKC
        self.assertEqual(validate_name("j\u00f6rg"), "j\u00f6rg")

    def test_invalid(self) -> None:
        bad_names = ["", "a:b", "a b", "a\tb", "a\x01", "#x", "@x", "x" * 256, "a\u2028b", "\x7f"]
        for bad in bad_names:
            with self.assertRaises(InvalidUserName, msg=repr(bad)):
                validate_name(bad)

    def test_passwords(self) -> None:
        validate_password("correct horse")
        for bad in ["", "a\0b", "a\nb", "a\rb", "x" * 256, "\udc80"]:
            with self.assertRaises(InvalidPassword, msg=repr(bad)):
                validate_password(bad)


class ScramRecordTests(SynchronousTestCase):
    def test_round_trip_and_check(self) -> None:
        record = ScramRecord.from_password("pencil", iterations=4096)
        text = record.encode()
        self.assertRegex(text, r"^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[^:$]+$")
        self.assertEqual(ScramRecord.parse(text), record)
        self.assertTrue(record.check_password("pencil"))
        self.assertFalse(record.check_password("pencil "))
        self.assertNotEqual(ScramRecord.from_password("pencil", iterations=4096).salt, record.salt)

    def test_saslprep_applied(self) -> None:
        record = ScramRecord.from_password("I\u00adX", iterations=4096)
        self.assertTrue(record.check_password("IX"))

    def test_malformed(self) -> None:
        good = ScramRecord.from_password("x", iterations=4096).encode()
        for bad in [
            "",
            good.replace("SCRAM-SHA-256", "SCRAM-SHA-1"),
            good.replace("$4096:", "$0:"),
            good.replace("$4096:", "$x:"),
            good[:-4],
            good + ":x",
            "SCRAM-SHA-256$4096:$AA==:AA==",
        ]:
            with self.assertRaises(ValueError, msg=bad):
                ScramRecord.parse(bad)
        with self.assertRaises(ValueError):
            ScramRecord.from_password("x", iterations=0)


class PasswordFileTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = tmpdir() / "data" / "users"
        self.pf = PasswordFile(self.path, iterations=4096)

    def test_provides_scram_store(self) -> None:
        self.assertTrue(verifyObject(IScramStore, self.pf))

    def test_missing_file_is_empty(self) -> None:
        self.assertEqual(self.pf.names(), [])
        self.assertIsNone(self.pf.scram_record("alice"))

    def test_add_list_remove(self) -> None:
        self.assertTrue(self.pf.add("bob", "pw1"))
        self.assertTrue(self.pf.add("alice", "pw2", cram_md5=True))
        self.assertEqual(self.pf.names(), ["alice", "bob"])
        self.assertFalse(self.pf.add("bob", "pw3"))  # replaces
        record = self.pf.scram_record("bob")
        assert record is not None
        self.assertTrue(record.check_password("pw3"))
        self.pf.remove("bob")
        self.assertEqual(self.pf.names(), ["alice"])
        with self.assertRaises(NoSuchUser):
            self.pf.remove("bob")
        self.assertEqual(str(NoSuchUser("bob")), "no such user: bob")

    def test_file_format_and_mode(self) -> None:
        self.pf.add("bob", "hunter2")
        self.pf.add("tim", "tanstaaf", cram_md5=True)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(self.path.parent).st_mode), 0o700)
        text = self.path.read_text()
        self.assertNotIn("hunter2", text)
        lines = [line for line in text.splitlines() if not line.startswith("#")]
        self.assertRegex(lines[0], r"^@mock-key [A-Za-z0-9+/]{43}=$")
        self.assertRegex(lines[1], r"^bob SCRAM-SHA-256\$4096:\S+\$\S+:\S+$")
        self.assertRegex(lines[2], r"^tim SCRAM-SHA-256\$4096:\S+ CRAM-MD5\$dGFuc3RhYWY=$")
        self.assertEqual(self.pf.cram_md5_secret("tim"), b"tanstaaf")
        self.assertIsNone(self.pf.cram_md5_secret("bob"))
        self.assertEqual([p.name for p in self.path.parent.iterdir() if "tmp" in p.name], [])

    def test_names_are_stored_prepared(self) -> None:
        self.pf.add("\uff21lice", "pw")
        self.assertEqual(self.pf.names(), ["Alice"])
        with self.assertRaises(InvalidUserName):
            self.pf.add("a b", "pw")
        with self.assertRaises(InvalidPassword):
            self.pf.add("ab", "")

    def test_reload_on_change(self) -> None:
        self.pf.add("bob", "pw")
        other = PasswordFile(self.path)
        self.assertEqual(other.names(), ["bob"])
        self.pf.add("carol", "pw")
        self.assertEqual(other.names(), ["bob", "carol"])
        self.path.unlink()
        self.assertEqual(other.names(), [])

    def test_reload_on_in_place_edit(self) -> None:
        self.pf.add("bob", "pw")
        text = self.path.read_text()
        with open(self.path, "w") as f:  # same inode, new size
            f.write(text + text.splitlines()[-1].replace("bob", "bobby", 1) + "\n")
        self.assertEqual(self.pf.names(), ["bob", "bobby"])

    def test_bad_file_at_start(self) -> None:
        self.path.parent.mkdir(parents=True)
        self.path.write_text("# comment\n\nbob SCRAM-SHA-256$nonsense\n")
        with self.assertRaises(ConfigError) as cm:
            PasswordFile(self.path)
        self.assertIn(f"{self.path}:3", str(cm.exception))

    def test_bad_reload_keeps_old_contents(self) -> None:
        events: list[dict[str, Any]] = []
        self.patch(passwords, "log", Logger(observer=events.append))
        self.pf.add("bob", "pw")
        self.path.write_text("garbage line here\n")
        self.assertEqual(self.pf.names(), ["bob"])
        self.assertEqual(self.pf.names(), ["bob"])
        self.assertEqual(len(events), 1)  # logged once per change, not per lookup
        self.assertIn(":1", str(events[0]["error"]))
        with self.assertRaises(ConfigError):  # and writers refuse to overwrite it
            self.pf.add("carol", "pw")

    def test_parse_errors(self) -> None:
        record = ScramRecord.from_password("x", iterations=4096).encode()
        self.path.parent.mkdir(parents=True)
        for text in [
            f"bob {record}\nbob {record}\n",
            f"a:b {record}\n",
            f"bob {record} PLAIN$x\n",
            f"bob {record} CRAM-MD5$%%\n",
            f"bob {record} x y\n",
            "@mock-key %%\n",
        ]:
            self.path.write_text(text)
            with self.assertRaises(ConfigError, msg=text):
                PasswordFile(self.path)

    @settings(max_examples=100, deadline=None)
    @given(st.text(max_size=200))
    def test_parser_raises_only_config_errors(self, text: str) -> None:
        with contextlib.suppress(ConfigError):
            passwords._parse(text, "f")

    def test_mock_records(self) -> None:
        self.pf.add("bob", "pw", iterations=5000)
        self.pf.add("carol", "pw", iterations=5000)
        self.pf.add("dave", "pw")
        mock = self.pf.mock_scram_record("ghost")
        self.assertEqual(mock.iterations, 5000)  # the most common real count
        self.assertEqual(mock, PasswordFile(self.path).mock_scram_record("ghost"))
        self.assertNotEqual(mock.salt, self.pf.mock_scram_record("ghost2").salt)
        # without a key in the file, a per-process key is used (still stable in-process)
        fresh = PasswordFile(tmpdir() / "users")
        self.assertEqual(fresh.mock_scram_record("x"), fresh.mock_scram_record("x"))
        self.assertEqual(
            fresh.mock_scram_record("x").iterations, passwords.DEFAULT_SCRAM_ITERATIONS
        )


class CountingRunner:
    """A synchronous runner that counts the verifications it ran."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, function: Callable[[], bool]) -> Deferred[bool]:
        self.calls += 1
        return synchronous_runner(function)


class CheckerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.pf = PasswordFile(tmpdir() / "users", iterations=4096)
        self.pf.add("bob", "hunter2")
        self.pf.add("tim", "tanstaaftanstaaf", cram_md5=True)
        self.runner = CountingRunner()
        self.checker = PasswordFileChecker(self.pf, self.runner)

    def check(self, credentials: Any) -> Any:
        return self.checker.requestAvatarId(credentials)

    def test_plaintext(self) -> None:
        d = self.check(UsernamePassword(b"bob", b"hunter2"))
        self.assertEqual(self.successResultOf(d), b"bob")
        self.failureResultOf(self.check(UsernamePassword(b"bob", b"hunter3")), UnauthorizedLogin)

    def test_unknown_user_does_the_same_work(self) -> None:
        f = self.failureResultOf(self.check(UsernamePassword(b"ghost", b"x")), UnauthorizedLogin)
        g = self.failureResultOf(self.check(UsernamePassword(b"bob", b"x")), UnauthorizedLogin)
        self.assertEqual(str(f.value), str(g.value))
        self.assertEqual(self.runner.calls, 2)  # PBKDF2 ran for the unknown user too

    def test_undecodable(self) -> None:
        self.failureResultOf(self.check(UsernamePassword(b"\xff", b"x")), UnauthorizedLogin)
        self.failureResultOf(self.check(UsernamePassword(b"bob", b"\xff")), UnauthorizedLogin)
        self.assertEqual(self.runner.calls, 2)

    def test_username_is_saslprepped(self) -> None:
        d = self.check(UsernamePassword("\uff42ob".encode(), b"hunter2"))
        self.assertEqual(self.successResultOf(d), b"bob")

    def test_cram_md5(self) -> None:
        challenge = b"<1896.697170952@postoffice.reston.mci.net>"
        good = CramMD5Credentials(b"tim", challenge, b"b913a602c7eda7a495b4e6e7334d3890")
        self.assertEqual(self.successResultOf(self.check(good)), b"tim")
        wrong = CramMD5Credentials(b"tim", challenge, b"0" * 32)
        self.failureResultOf(self.check(wrong), UnauthorizedLogin)
        # bob has no CRAM-MD5 secret: fails like an unknown user
        digest = hmac.new(b"hunter2", challenge, "md5").hexdigest().encode()
        for user in (b"bob", b"ghost"):
            d = self.check(CramMD5Credentials(user, challenge, digest))
            self.failureResultOf(d, UnauthorizedLogin)

    def test_scram(self) -> None:
        record = self.pf.scram_record("bob")
        assert record is not None
        # forge a proof the way a client would, from the salted password
        salted = hashlib.pbkdf2_hmac("sha256", b"hunter2", record.salt, record.iterations)
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        message = b"auth message"
        signature = hmac.new(record.stored_key, message, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        d = self.check(ScramCredentials("bob", message, proof))
        self.assertEqual(self.successResultOf(d), b"bob")
        for name, msg, prf in [
            ("bob", b"other", proof),
            ("bob", message, b"short"),
            ("ghost", message, proof),
        ]:
            d = self.check(ScramCredentials(name, msg, prf))
            self.failureResultOf(d, UnauthorizedLogin)
        self.assertEqual(self.runner.calls, 0)  # SCRAM checks are cheap HMACs

    def test_unhandled(self) -> None:
        self.failureResultOf(self.check(object()), UnhandledCredentials)

    def test_cache_skips_pbkdf2_for_a_repeated_right_password(self) -> None:
        now = [100.0]
        cache = VerifiedPasswordCache(60, clock=lambda: now[0])
        checker = PasswordFileChecker(self.pf, self.runner, cache=cache)
        right = UsernamePassword(b"bob", b"hunter2")
        for _ in range(3):
            self.assertEqual(self.successResultOf(checker.requestAvatarId(right)), b"bob")
        self.assertEqual(self.runner.calls, 1)
        # a wrong password is never answered from the cache, and never cached
        for _ in range(2):
            d = checker.requestAvatarId(UsernamePassword(b"bob", b"hunter3"))
            self.failureResultOf(d, UnauthorizedLogin)
        self.assertEqual(self.runner.calls, 3)
        # after the time to live, PBKDF2 runs again
        now[0] += 61
        self.successResultOf(checker.requestAvatarId(right))
        self.assertEqual(self.runner.calls, 4)

    def test_cache_ends_with_a_password_change(self) -> None:
        cache = VerifiedPasswordCache(60)
        checker = PasswordFileChecker(self.pf, self.runner, cache=cache)
        old = UsernamePassword(b"bob", b"hunter2")
        self.successResultOf(checker.requestAvatarId(old))
        self.pf.add("bob", "correct horse")
        self.failureResultOf(checker.requestAvatarId(old), UnauthorizedLogin)
        new = UsernamePassword(b"bob", b"correct horse")
        self.assertEqual(self.successResultOf(checker.requestAvatarId(new)), b"bob")
        self.pf.remove("bob")
        self.failureResultOf(checker.requestAvatarId(new), UnauthorizedLogin)
        self.assertEqual(self.runner.calls, 4)

    def test_cache_off(self) -> None:
        checker = PasswordFileChecker(self.pf, self.runner, cache=VerifiedPasswordCache(0))
        for _ in range(2):
            self.successResultOf(checker.requestAvatarId(UsernamePassword(b"bob", b"hunter2")))
        self.assertEqual(self.runner.calls, 2)

    def test_cache_is_bounded(self) -> None:
        cache = VerifiedPasswordCache(60, max_entries=2)
        for name in ("a", "b", "c"):
            cache.remember(name, b"k", "pw")
        self.assertEqual(len(cache), 2)
        self.assertFalse(cache.matches("a", b"k", "pw"))
        self.assertTrue(cache.matches("c", b"k", "pw"))
        self.assertFalse(cache.matches("c", b"other record", "pw"))
        self.assertEqual(len(cache), 1)  # a stale record's entry is dropped
        with self.assertRaises(ValueError):
            VerifiedPasswordCache(-1)

    def test_thread_runner(self) -> None:
        """Verification runs in the pool; the result is delivered through callFromThread."""
        delivered: list[Callable[[], object]] = []

        class FakeReactor:
            def callFromThread(self, f: Callable[..., object], *a: object, **kw: object) -> None:
                delivered.append(lambda: f(*a, **kw))

        pool = ThreadPool(minthreads=1, maxthreads=1)
        pool.start()
        threads: list[threading.Thread] = []

        def work() -> bool:
            threads.append(threading.current_thread())
            return True

        d = thread_runner(FakeReactor(), pool)(work)  # type: ignore[arg-type]
        pool.stop()  # joins the worker: the work is done
        self.assertNoResult(d)
        for call in delivered:
            call()
        self.assertTrue(self.successResultOf(d))
        self.assertIsNot(threads[0], threading.main_thread())
