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
import time
from collections.abc import Sequence
from pathlib import Path

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
    """A ``twistd -n`` child process whose output is collected in a file."""

    def __init__(
        self, args: Sequence[str], cwd: str | os.PathLike[str], env: dict[str, str] | None = None
    ) -> None:
        self.cwd = Path(cwd)
        self.log_path = self.cwd / "daemon.out"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        child_env = dict(os.environ)
        child_env.update(env or {})
        self.proc = subprocess.Popen(
            twistd_argv("--nodaemon", "--pidfile=", *args),
            cwd=self.cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env,
        )

    def output(self) -> str:
        """Everything the daemon printed so far."""
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """Wait until the output matches ``pattern`` (a regex); fail if the child exits first."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern, re.MULTILINE)
        while time.monotonic() < deadline:
            m = rx.search(self.output())
            if m:
                return m
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"daemon exited ({self.proc.returncode}) before {pattern!r}:\n{self.output()}"
                )
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {pattern!r}:\n{self.output()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send ``sig``, wait for the exit and return the exit code (kill after ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


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
