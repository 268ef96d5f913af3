"""The cold ``SELECT`` + ``FETCH 1:* (FLAGS RFC822.SIZE ENVELOPE)``: where our server's time goes.

The same generated Maildir as ``bench/imap_pop3.py`` (``--messages``, no
uidlist or index yet), a fresh copy and a fresh server per round:

- default: a ``twistd -n netproto-imap`` per round (and, with
  ``--dovecot``, a private Dovecot on its own copy, alternated), the
  client's wall time and the server's CPU around ``LOGIN``, ``SELECT`` and
  ``FETCH`` (ours: the whole process from ``/proc/<pid>/stat``, all
  threads, dead ones included, and the reactor thread apart; Dovecot: its
  ``imap`` process for the session);
- ``--steps``: in process, ``MaildirFolder.sync`` and then the FETCH's
  batches (``fetch_pieces``, as the server runs them) on fresh copies,
  ``time.process_time`` min / median, and a SHA-256 of the FETCH lines
  (the output must not change); ``--profile`` adds a cProfile of one round.

``--tree DIR`` (repeatable) measures other source trees, alternated round
by round (``git archive <commit> | tar -x -C DIR`` makes one).

Run: ``python bench/imap_cold.py [--steps [--profile]] [--dovecot] [--tree DIR ...] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import os
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

from bench.harness import process_tree, steps_use_first_tree  # noqa: E402
from bench.imap_pop3 import PASSWORD, USER, Raw, copy_tree, dovecot, make_template  # noqa: E402

_PORT_RX = r"listening on (?:tcp )?127\.0\.0\.1:(\d+)"
_TICK = os.sysconf("SC_CLK_TCK")
_FETCH = "FETCH 1:* (FLAGS RFC822.SIZE ENVELOPE)"


def _boot(tree: Path) -> str:
    return (
        "import sys, twisted.plugins; "
        f"twisted.plugins.__path__.append({str(tree / 'twisted_plugins')!r}); "
        f"sys.path.insert(0, {str(tree)!r}); "
        "from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
    )


def cpu_s(pid: int, task: int | None = None) -> float:
    """Seconds on CPU (user + system) of a process (all threads, dead ones too) or one task."""
    path = f"/proc/{pid}/stat" if task is None else f"/proc/{pid}/task/{task}/stat"
    with open(path) as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def session(port: int, cpu: object) -> dict[str, float]:
    """LOGIN, SELECT, FETCH: wall and CPU (``cpu()`` -> (total, reactor thread)) of each."""
    out: dict[str, float] = {}
    c = Raw(port)
    t = time.perf_counter()
    for step, command in (
        ("LOGIN", f'LOGIN {USER} "{PASSWORD}"'),
        ("SELECT", "SELECT INBOX"),
        ("FETCH", _FETCH),
    ):
        before = cpu() if step != "LOGIN" else None  # type: ignore[operator]
        c.command(command)
        now = time.perf_counter()
        out[f"{step} wall"] = now - t
        t = now
        if before is not None:
            after = cpu()  # type: ignore[operator]
            out[f"{step} CPU"] = after[0] - before[0]
            if after[1] is not None:
                out[f"{step} CPU, reactor thread"] = after[1] - before[1]
    c.close()
    return out


def ours_round(tree: Path, work: Path, template: Path, tag: str) -> dict[str, float]:
    from bench.harness import ServerProcess, ServerSpec

    base = work / f"ours-{tag}"
    copy_tree(template, base)
    argv = [
        sys.executable, "-c", _boot(tree), "--nodaemon", "--pidfile=", "--logfile=-",
        "netproto-imap", "--listen", "tcp:0:interface=127.0.0.1", "--maildir", str(base),
        "--passwords", str(work / "users"), "--data-dir", str(work / f"data-{tag}"),
        "--allow-insecure-auth",
    ]  # fmt: skip
    try:
        spec = ServerSpec("netproto-imap", argv, cwd=str(tree), port_regex=_PORT_RX)
        with ServerProcess(spec) as p:
            port = p.wait_ready()
            pid = p.pid
            return session(port, lambda: (cpu_s(pid), cpu_s(pid, pid)))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _imap_process(master: int) -> int:
    for child in process_tree(master)[1:]:  # Dovecot's imap is a child of the master
        with open(f"/proc/{child}/comm") as f:
            if f.read().strip() == "imap":
                return child
    raise LookupError("no imap process")


def dovecot_round(work: Path, template: Path, tag: str) -> dict[str, float]:
    base = work / f"dovecot-{tag}"
    copy_tree(template, base)
    d = dovecot(work, base, ("imap",))
    try:
        assert d.process is not None
        master = d.process.pid
        state: dict[str, int] = {}

        def cpu() -> tuple[float, None]:
            if "pid" not in state:
                state["pid"] = _imap_process(master)
            return cpu_s(state["pid"]), None

        return session(d.ports["imap"], cpu)
    finally:
        d.cleanup()
        shutil.rmtree(base, ignore_errors=True)


def steps(work: Path, template: Path, rounds: int, profile: bool) -> None:
    """Cold sync and FETCH batches in process, on this interpreter's ``netproto_twisted``."""
    from netproto_twisted.imap4.server.fetch import FetchEntry, MessageCache, fetch_pieces
    from netproto_twisted.imap4.server.fetchsend import BATCH_BUDGET
    from netproto_twisted.imap4.server.settings import IMAPSettings
    from netproto_twisted.imap4.wire.fetchspec import FetchAtt
    from netproto_twisted.mailstore.folder import MaildirFolder
    from netproto_twisted.mailstore.fsops import FsOps

    atts = [FetchAtt("FLAGS"), FetchAtt("RFC822.SIZE"), FetchAtt("ENVELOPE")]
    batch = IMAPSettings().fetch_batch

    def one(n: int, prof: cProfile.Profile | None) -> tuple[float, float, str]:
        base = work / f"steps-{n}"
        copy_tree(template, base)
        folder = MaildirFolder(str(base / USER), FsOps())
        c = time.process_time()
        if prof:
            prof.enable()
        snapshot = folder.sync()
        if prof:
            prof.disable()
        sync = time.process_time() - c
        cache = MessageCache()
        entries = [FetchEntry(s, m, m.recent) for s, m in enumerate(snapshot.messages, 1)]
        lines: list[object] = []
        c = time.process_time()
        if prof:
            prof.enable()
        start = 0
        while start < len(entries):
            pieces, count = fetch_pieces(
                folder, entries[start : start + batch], atts, cache, False, budget=BATCH_BUDGET
            )
            lines += pieces
            start += count
        if prof:
            prof.disable()
        fetch = time.process_time() - c
        folder.index.close()
        shutil.rmtree(base, ignore_errors=True)
        digest = hashlib.sha256(b"".join(lines)).hexdigest()  # type: ignore[arg-type]
        return sync, fetch, digest

    syncs, fetches, digests = [], [], set()
    for n in range(rounds):
        s, f, h = one(n, None)
        syncs.append(s)
        fetches.append(f)
        digests.add(h)
    print(
        f"cold sync: CPU min {min(syncs):.3f} / median {statistics.median(syncs):.3f} s; "
        f"cold FETCH: min {min(fetches):.3f} / median {statistics.median(fetches):.3f} s; "
        f"FETCH lines SHA-256 {', '.join(sorted(digests))}"
    )
    if profile:
        prof = cProfile.Profile()
        one(rounds, prof)
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree", action="append", default=[])
    parser.add_argument("--dovecot", action="store_true")
    parser.add_argument("--steps", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-imap-cold-"))
    os.chmod(work, 0o755)
    try:
        template = work / "template"
        make_template(template, args.messages)
        if args.steps:
            steps(work, template, args.rounds, args.profile)
            return
        from netproto_twisted.core.passwords import PasswordFile

        PasswordFile(work / "users", iterations=4096).add(USER, PASSWORD)
        trees = [Path(t).resolve() for t in args.tree] or [REPO]
        servers: list[str] = [str(t) for t in trees] + (["dovecot"] if args.dovecot else [])
        results: dict[tuple[str, str], list[float]] = {}
        for round_ in range(args.rounds):
            for server in servers if round_ % 2 == 0 else servers[::-1]:
                tag = f"{round_}-{len(results)}"
                if server == "dovecot":
                    row = dovecot_round(work, template, tag)
                else:
                    row = ours_round(Path(server), work, template, tag)
                for key, value in row.items():
                    results.setdefault((server, key), []).append(value)
        for server in servers:  # the row as imap_pop3.py times it: LOGIN + SELECT + FETCH
            phases = [results[server, f"{s} wall"] for s in ("LOGIN", "SELECT", "FETCH")]
            walls = zip(*phases, strict=True)
            results[server, "LOGIN + SELECT + FETCH wall"] = [sum(w) for w in walls]
        for (server, key), values in sorted(results.items()):
            shown = ", ".join(f"{v:.3f}" for v in values)
            print(f"{server}  {key}: median {statistics.median(values):.3f} s ({shown})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    steps_use_first_tree()  # --steps measures the first --tree's code in this process
    main()
