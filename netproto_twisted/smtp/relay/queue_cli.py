"""``netproto queue list | flush | delete ID | hold ID | release ID`` on a relay spool.

The commands work on the spool directory directly (with the spool's lock),
whether or not a daemon runs on it.  A running relay learns about them
through trigger files it polls every few seconds: ``flush`` touches
``DIR/flush`` (retry every pending recipient now); ``delete``, ``hold`` and
``release`` touch ``DIR/rescan``.  A message being delivered while it is
deleted or held finishes that one attempt.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from netproto_twisted.core.errors import ConfigError
from netproto_twisted.smtp.relay.queue import PENDING, QueueEntry, SpoolDirectory

__all__ = ["DEFAULT_QUEUE_DIR", "add_parser", "format_entry"]

#: The combined daemon's default queue directory (``<data>/queue``).
DEFAULT_QUEUE_DIR = "netproto-data/queue"


def _when(timestamp: float, now: float) -> str:
    delta = timestamp - now
    if abs(delta) < 1:
        return "now"
    span = abs(delta)
    if span < 120:
        text = f"{span:.0f}s"
    elif span < 7200:
        text = f"{span / 60:.0f}m"
    elif span < 172800:
        text = f"{span / 3600:.1f}h"
    else:
        text = f"{span / 86400:.1f}d"
    return f"in {text}" if delta > 0 else f"{text} ago"


def format_entry(entry: QueueEntry, now: float | None = None) -> str:
    """Describe one queue entry in a few lines (the ``list`` output)."""
    now = time.time() if now is None else now
    flags = " HELD" if entry.held else ""
    sender = entry.mail_from.address or "<>"
    lines = [f"{entry.id}  {entry.size:>9}  {_when(entry.received_at, now):>10}  {sender}{flags}"]
    for r in entry.recipients:
        state = r.status
        if r.status == PENDING and r.attempts:
            state += f", attempt {r.attempts}, next {_when(r.next_try, now)}"
        elif r.status == PENDING:
            state += ", not tried yet"
        reply = f"  [{r.reply[0]} {r.reply[2]}]" if r.reply is not None else ""
        lines.append(f"    {r.address}  ({state}){reply}")
    return "\n".join(lines)


def _directory(args: argparse.Namespace) -> SpoolDirectory:
    path = Path(args.queue)
    if not (path / "entries").is_dir():
        raise ConfigError("queue", f"{path} is not a queue directory")
    return SpoolDirectory(path)


def _list(args: argparse.Namespace) -> int:
    entries = _directory(args).load_all()
    now = time.time()
    for entry in entries:
        sys.stdout.write(format_entry(entry, now) + "\n")
    pending = sum(1 for e in entries if e.pending)
    sys.stdout.write(f"{len(entries)} entries, {pending} with pending recipients\n")
    return 0


def _flush(args: argparse.Namespace) -> int:
    _directory(args).request_flush()
    sys.stdout.write("flush requested (a running relay picks it up within seconds)\n")
    return 0


def _delete(args: argparse.Namespace) -> int:
    _directory(args).delete(args.id)
    sys.stdout.write(f"deleted {args.id}\n")
    return 0


def _hold(args: argparse.Namespace) -> int:
    _directory(args).hold(args.id)
    sys.stdout.write(f"held {args.id}\n")
    return 0


def _release(args: argparse.Namespace) -> int:
    _directory(args).release(args.id)
    sys.stdout.write(f"released {args.id}\n")
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``netproto queue list|flush|delete|hold|release`` with the CLI."""
    queue = subparsers.add_parser("queue", help="inspect and manage the relay queue")
    actions = queue.add_subparsers(dest="action", required=True, metavar="ACTION")
    queue_help = f"queue directory (default: ./{DEFAULT_QUEUE_DIR})"
    for name, func, text, with_id in (
        ("list", _list, "list the queued messages and their recipients", False),
        ("flush", _flush, "retry every pending recipient now", False),
        ("delete", _delete, "delete a message from the queue (no bounce)", True),
        ("hold", _hold, "stop delivery attempts for a message", True),
        ("release", _release, "resume delivery of a held message, at once", True),
    ):
        parser = actions.add_parser(name, help=text)
        parser.add_argument("--queue", default=DEFAULT_QUEUE_DIR, help=queue_help)
        if with_id:
            parser.add_argument("id", metavar="ID")
        parser.set_defaults(func=func)
