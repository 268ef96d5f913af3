"""Where the local filesystem's calls run: one-file calls inline unless slow, others pooled."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.threads import InlineUnlessSlow
from netproto_twisted.ftp.fs import LocalFilesystem
from netproto_twisted.ftp.server import FTPServerFactory, FTPSettings
from netproto_twisted.ftp.users import UserTable


class Recording:
    """A runner that runs at once and remembers what it ran."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        self.calls += 1
        return maybeDeferred(f, *args, **kwargs)


class RunnerSplitTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.home = Path(self.mktemp())
        (self.home / "d").mkdir(parents=True)
        (self.home / "f").write_bytes(b"data")
        self.pool, self.file_ops = Recording(), Recording()
        self.fs = LocalFilesystem(self.home, self.pool, file_ops=self.file_ops)

    def test_one_file_calls(self) -> None:
        """stat, open, mkdir, rename, delete and utime go to file_ops."""
        fs = self.fs
        self.assertEqual(self.successResultOf(fs.stat("/f")).size, 4)
        self.successResultOf(fs.open_read("/f", 1)).close()
        self.successResultOf(fs.mkdir("/e"))
        self.successResultOf(fs.rename("/f", "/g"))
        self.successResultOf(fs.set_mtime("/g", 1_000_000))
        self.successResultOf(fs.remove("/g"))
        self.successResultOf(fs.rmdir("/e"))
        self.assertEqual((self.file_ops.calls, self.pool.calls), (7, 0))

    def test_listings_and_contents(self) -> None:
        """Listings and an upload's writes go to the pool."""
        names = [i.name for i in self.successResultOf(self.fs.list_dir("/"))]
        self.assertEqual(names, ["d", "f"])
        handle = self.successResultOf(self.fs.open_write("/up"))
        self.successResultOf(handle.write(b"x" * 10))
        self.successResultOf(handle.commit())
        self.assertEqual((self.home / "up").read_bytes(), b"x" * 10)
        self.assertEqual(self.pool.calls, 3)  # list, write, commit
        self.assertEqual(self.file_ops.calls, 1)  # the open

    def test_errors_still_map(self) -> None:
        """A missing file fails the same way inline."""
        from netproto_twisted.ftp.errors import FileSystemError

        self.failureResultOf(self.fs.stat("/missing"), FileSystemError)


class FactoryTests(SynchronousTestCase):
    def factory(self, **settings: Any) -> FTPServerFactory:
        pool = Recording()
        return FTPServerFactory(
            Clock(), UserTable(self.mktemp(), {}), None, FTPSettings(**settings), runner=pool
        )

    def test_default_inline(self) -> None:
        """By default the factory runs one-file calls inline, falling back to its runner."""
        factory = self.factory()
        self.assertIsInstance(factory.file_ops, InlineUnlessSlow)
        self.assertEqual(factory.file_ops.slow, 0.005)
        self.assertIs(factory.file_ops.fallback, factory.runner)
        self.assertEqual(self.successResultOf(factory.file_ops(lambda: 7)), 7)
        self.assertEqual(factory.runner.calls, 0)

    def test_always_in_the_pool(self) -> None:
        """``inline_file_ops=None`` sends every call to the runner."""
        factory = self.factory(inline_file_ops=None)
        self.assertEqual(self.successResultOf(factory.file_ops(lambda: 7)), 7)
        self.assertEqual(factory.runner.calls, 1)


class HomeMemoTests(SynchronousTestCase):
    """A resolved home is reused by the logins of the next second, then resolved again."""

    def test_link_change_seen_after_the_memo(self) -> None:
        from netproto_twisted.ftp.server import protocol
        from netproto_twisted.ftp.users import FTPUser

        base = Path(self.mktemp()).absolute()
        (base / "a").mkdir(parents=True)
        (base / "b").mkdir()
        (base / "home").symlink_to(base / "a")
        now = [100.0]
        self.patch(protocol.time, "monotonic", lambda: now[0])
        open_home = protocol.local_filesystems(Recording())
        user = FTPUser("u", str(base / "home"))
        self.assertEqual(open_home(user).home, str(base / "a"))
        (base / "home").unlink()
        (base / "home").symlink_to(base / "b")
        now[0] += protocol.HOME_MEMO_SECONDS / 2
        self.assertEqual(open_home(user).home, str(base / "a"))
        now[0] += protocol.HOME_MEMO_SECONDS
        self.assertEqual(open_home(user).home, str(base / "b"))

    def test_memo_bounded(self) -> None:
        """The memo holds at most _HOME_MEMO_SIZE homes (then it starts again)."""
        from netproto_twisted.ftp.server import protocol
        from netproto_twisted.ftp.users import FTPUser

        self.patch(protocol, "_HOME_MEMO_SIZE", 2)
        base = Path(self.mktemp()).absolute()
        calls = []
        real = os.path.realpath
        self.patch(os.path, "realpath", lambda p: calls.append(p) or real(p))
        open_home = protocol.local_filesystems(Recording())
        users = [FTPUser(name, str(base / name)) for name in ("a", "b", "c")]
        for user in users + users[:1]:
            open_home(user)
        # a and b were remembered; c started the memo again, so a was resolved twice.
        self.assertEqual(calls.count(str(base / "a")), 2)

    def test_missing_home_created(self) -> None:
        from netproto_twisted.ftp.server import protocol
        from netproto_twisted.ftp.users import FTPUser

        home = Path(self.mktemp()).absolute() / "new"
        protocol.local_filesystems(Recording())(FTPUser("u", str(home)))
        self.assertTrue(home.is_dir())


class UserTableMemoTests(SynchronousTestCase):
    def test_same_facts(self) -> None:
        """user() of a name asked before gives the same facts."""
        table = UserTable("/srv", {"*": ("%u", "elr"), "bob": ("/b", "elradfmw")})
        for name in ("alice", "bob", "alice", "bob"):
            user = table.user(name)
            self.assertEqual(
                (user.home, user.permissions),
                ("/srv/alice", "elr") if name == "alice" else ("/b", "elradfmw"),
            )
        self.assertIs(table.user("alice"), table.user("alice"))

    def test_memo_bounded(self) -> None:
        from netproto_twisted.ftp import users

        self.patch(users, "_KNOWN_USERS", 2)
        table = UserTable("/srv", {})
        for name in ("a", "b", "c"):
            table.user(name)
        self.assertLessEqual(len(table._known), 2)
        self.assertEqual(table.user("a").home, "/srv/a")
