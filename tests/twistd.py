"""Start the daemons as users start them (``twistd -n ...``) in a subprocess, for tests.

The plugin directory of the source tree is added to ``twisted.plugins.__path__``
in the child, so this works from a checkout, an editable install and a
regular install alike.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

REPO = Path(__file__).resolve().parent.parent

_BOOT = (
    "import sys, twisted.plugins; "
    f"twisted.plugins.__path__.append({str(REPO / 'twisted_plugins')!r}); "
    f"sys.path.insert(0, {str(REPO)!r}); "
    "from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
)


def twistd_argv(*args: str) -> list[str]:
    """Return the argv that runs ``twistd ARGS`` with this tree's plugins."""
    return [sys.executable, "-c", _BOOT, *args]


class Daemon:
    """A ``twistd -n`` child process whose output is collected (and copied to a file).

    A thread reads the child's output pipe as it comes, so that the child
    never blocks on a full pipe; :meth:`wait_for` sleeps on a condition that
    the reader signals at each new output and a second thread signals when
    the child exits, so it wakes on events, never on a timer.
    """

    def __init__(
        self, args: Sequence[str], cwd: str | os.PathLike[str], env: dict[str, str] | None = None
    ) -> None:
        self.cwd = Path(cwd)
        self.log_path = self.cwd / "daemon.out"
        self._log: BinaryIO | None = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._data = bytearray()
        self._eof = False
        self._changed = threading.Condition()
        child_env = dict(os.environ)
        child_env.update(env or {})
        self.proc = subprocess.Popen(
            twistd_argv("--nodaemon", "--pidfile=", *args),
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env,
        )
        self._reader = threading.Thread(target=self._read, name="daemon-output", daemon=True)
        self._reader.start()
        threading.Thread(target=self._reap, name="daemon-exit", daemon=True).start()

    def _read(self) -> None:
        """Copy the child's output into memory and the log file until the pipe closes."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            with self._changed:
                if data:
                    self._data += data
                    if self._log is not None:
                        self._log.write(data)
                        self._log.flush()
                else:
                    self._eof = True
                self._changed.notify_all()
            if not data:
                return

    def _reap(self) -> None:
        """Wake :meth:`wait_for` when the child exits."""
        self.proc.wait()
        with self._changed:
            self._changed.notify_all()

    def output(self) -> str:
        """Everything the daemon printed so far."""
        with self._changed:
            return self._data.decode(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """Wait until the output matches ``pattern`` (a regex); fail if the child exits first."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern, re.MULTILINE)
        waited_for_the_rest = False
        with self._changed:
            while True:
                text = self._data.decode(errors="replace")
                m = rx.search(text)
                if m:
                    return m
                left = deadline - time.monotonic()
                if self.proc.returncode is not None:
                    if self._eof or waited_for_the_rest or left <= 0:
                        raise AssertionError(
                            f"daemon exited ({self.proc.returncode}) before {pattern!r}:\n{text}"
                        )
                    # The rest of its output is on its way (a second at most: a
                    # worker it left behind may hold the pipe open).
                    self._changed.wait(min(left, 1.0))
                    waited_for_the_rest = True
                    continue
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {pattern!r}:\n{text}")
                self._changed.wait(left)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send ``sig``, wait for the exit and return the exit code (kill after ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # The rest of its output (bounded: a worker it left behind may hold the pipe).
        self._reader.join(5)
        with self._changed:
            log, self._log = self._log, None
        if log is not None:
            log.close()
        return self.proc.returncode


def _twistd_flags_usage_errors() -> bool:
    from twisted import version

    return (version.major, version.minor) >= (26, 10)


#: Whether ``twistd`` exits non-zero after a usage error: it does from Twisted
#: 26.10 on; older releases print the error and exit with status 0.
USAGE_ERROR_EXITS_NONZERO = _twistd_flags_usage_errors()


def usage_error_exit(returncode: int) -> bool:
    """Whether ``returncode`` is what ``twistd`` ends with after a usage error."""
    return returncode != 0 if USAGE_ERROR_EXITS_NONZERO else returncode == 0


def run_twistd(
    args: Sequence[str], cwd: str | os.PathLike[str], timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run ``twistd ARGS`` to completion (for options errors) and return its result."""
    return subprocess.run(
        twistd_argv("--nodaemon", "--pidfile=", *args),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
