"""POP3 login (``PASS``) and ``LIST`` + ``RETR``: where our server's time goes.

Two modes, each on fresh copies of a generated Maildir of ``--messages``
messages (the same messages as ``bench/imap_pop3.py``, no uidlist yet):

- ``--steps``: in process, the parts of a login timed apart
  (``time.process_time`` for CPU, ``time.perf_counter`` for wall time):
  the password hash, opening the maildrop the first time (UIDs assigned,
  uidlist written and ``fsync``-ed), the same without ``fsync`` (the
  difference is the flushes' wall time), and a second login on the
  unchanged folder; then a profile of the first open.
- default: a ``twistd -n netproto-pop3`` server per round, the CPU of its
  process (all threads, from ``/proc/<pid>/task/*/schedstat``, nanoseconds)
  and the client's wall time around ``PASS``, around ``LIST`` + every
  ``RETR``, and around a second session's ``PASS``.

``--tree DIR`` (repeatable) measures other source trees, alternated round
by round (``git archive <commit> | tar -x -C DIR`` makes one).

Run: ``python bench/pop3_login.py [--steps] [--tree DIR ...] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import poplib
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.harness import ServerProcess, ServerSpec, steps_use_first_tree  # noqa: E402
from bench.imap_pop3 import PASSWORD, USER, copy_tree, make_template  # noqa: E402

_PORT_RX = r"listening on (?:tcp )?127\.0\.0\.1:(\d+)"


def _boot(tree: Path) -> str:
    return (
        "import sys, twisted.plugins; "
        f"twisted.plugins.__path__.append({str(tree / 'twisted_plugins')!r}); "
        f"sys.path.insert(0, {str(tree)!r}); "
        "from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
    )


def cpu_ns(pid: int) -> int:
    """Nanoseconds on CPU of every live thread of ``pid``."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            continue
    return total


def server_round(tree: Path, work: Path, template: Path, count: int, tag: str) -> dict[str, float]:
    """One fresh server and maildrop: CPU (ms) and wall (ms) per phase."""
    base = work / f"drop-{tag}"
    copy_tree(template, base, count)
    argv = [
        sys.executable, "-c", _boot(tree), "--nodaemon", "--pidfile=", "--logfile=-",
        "netproto-pop3", "--listen", "tcp:0:interface=127.0.0.1", "--maildir", str(base),
        "--passwords", str(work / "users"), "--data-dir", str(work / f"data-{tag}"),
        "--allow-insecure-auth",
    ]  # fmt: skip
    out: dict[str, float] = {}
    with ServerProcess(ServerSpec("netproto-pop3", argv, cwd=str(tree), port_regex=_PORT_RX)) as p:
        port = p.wait_ready()
        pid = p.pid
        for session in ("first", "second"):
            pop = poplib.POP3("127.0.0.1", port, timeout=300)
            pop.user(USER)
            c0, t0 = cpu_ns(pid), time.perf_counter()
            pop.pass_(PASSWORD)
            c1, t1 = cpu_ns(pid), time.perf_counter()
            out[f"PASS {session}, CPU"] = (c1 - c0) / 1e6
            out[f"PASS {session}, wall"] = (t1 - t0) * 1e3
            if session == "first":
                pop.list()
                for i in range(1, count + 1):
                    pop.retr(i)
                c2, t2 = cpu_ns(pid), time.perf_counter()
                out["LIST + RETR, CPU"] = (c2 - c1) / 1e6
                out["LIST + RETR, wall"] = (t2 - t1) * 1e3
            pop.quit()
    shutil.rmtree(base, ignore_errors=True)
    return out


def steps(work: Path, template: Path, count: int, profile: bool) -> None:
    """The parts of a login, in process, on this interpreter's ``netproto_twisted``."""
    from netproto_twisted.core.passwords import PasswordFile
    from netproto_twisted.mailstore.fsops import FsOps
    from netproto_twisted.pop3.maildrop import MaildirMaildrops

    def run_inline(f):  # type: ignore[no-untyped-def]
        raise AssertionError("not used")

    users = PasswordFile(work / "users-steps", iterations=4096)
    users.add(USER, PASSWORD)
    record = users.scram_record(USER)
    assert record is not None
    c, t = time.process_time(), time.perf_counter()
    assert record.check_password(PASSWORD)
    print(
        f"password check (PBKDF2, 4096 iterations): {1e3 * (time.process_time() - c):.2f} ms "
        f"CPU, {1e3 * (time.perf_counter() - t):.2f} ms wall"
    )
    rows: dict[str, list[tuple[float, float]]] = {}
    for round_ in range(5):
        for fsync in (True, False):
            base = work / f"steps-{round_}-{fsync}"
            copy_tree(template, base, count)
            drops = MaildirMaildrops(str(base), run_inline, fs=FsOps(fsync=fsync))
            for which in ("first open", "second open"):
                c, t = time.process_time(), time.perf_counter()
                drop = drops._open(USER)
                cpu, wall = time.process_time() - c, time.perf_counter() - t
                drop._lock.release()
                rows.setdefault(f"{which}, fsync={fsync}", []).append((cpu * 1e3, wall * 1e3))
            shutil.rmtree(base, ignore_errors=True)
    for name, values in rows.items():
        cpus = [v[0] for v in values]
        walls = [v[1] for v in values]
        print(
            f"{name}: CPU min {min(cpus):.1f} / median {statistics.median(cpus):.1f} ms, "
            f"wall min {min(walls):.1f} / median {statistics.median(walls):.1f} ms"
        )
    if profile:
        base = work / "steps-profile"
        copy_tree(template, base, count)
        drops = MaildirMaildrops(str(base), run_inline)
        prof = cProfile.Profile()
        prof.enable()
        drops._open(USER)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(18)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree", action="append", default=[])
    parser.add_argument("--steps", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-pop3-login-"))
    try:
        template = work / "template"
        make_template(template, args.messages)
        if args.steps:
            steps(work, template, args.messages, args.profile)
            return
        from netproto_twisted.core.passwords import PasswordFile

        PasswordFile(work / "users", iterations=4096).add(USER, PASSWORD)
        trees = [Path(t).resolve() for t in args.tree] or [REPO]
        results: dict[tuple[str, str], list[float]] = {}
        for round_ in range(args.rounds):
            order = trees if round_ % 2 == 0 else trees[::-1]
            for tree in order:
                row = server_round(tree, work, template, args.messages, f"{round_}-{tree.name}")
                for key, value in row.items():
                    results.setdefault((key, str(tree)), []).append(value)
        for (key, tree), values in sorted(results.items()):
            shown = ", ".join(f"{v:.1f}" for v in values)
            print(f"{tree}  {key}: median {statistics.median(values):.1f} ms ({shown})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    steps_use_first_tree()  # --steps measures the first --tree's code in this process
    main()
