"""``netproto news group add|remove|list``, ``news expire`` and ``news feeds``: the news admin."""

from __future__ import annotations

import argparse
import os
import sys
import time

from netproto_twisted.nntp.errors import StoreError
from netproto_twisted.nntp.feeds.queue import FeedQueue
from netproto_twisted.nntp.lists import is_group_status
from netproto_twisted.nntp.server.moderation import set_moderator
from netproto_twisted.nntp.store import DEFAULT_EXPIRE_DAYS, DEFAULT_HISTORY_DAYS, NewsDatabase

__all__ = ["DEFAULT_NEWS_DB", "add_parser"]

#: Where the combined daemon keeps the news database by default (under its data directory).
DEFAULT_NEWS_DB = "netproto-data/news/news.db"


def _status(value: str) -> str:
    """An argparse type: a group status of RFC 6048 (y, n, m, x, j, =other.group)."""
    if not is_group_status(value):
        raise argparse.ArgumentTypeError("y, n, m, x, j or =other.group")
    return value


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``netproto news ...`` with the CLI."""
    news = subparsers.add_parser("news", help="manage the news server's groups and articles")
    kinds = news.add_subparsers(dest="kind", required=True, metavar="WHAT")
    db_help = f"news database (default: ./{DEFAULT_NEWS_DB})"

    group = kinds.add_parser("group", help="add, remove or list newsgroups")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="create a group (or change its settings)")
    add.add_argument("--db", default=DEFAULT_NEWS_DB, help=db_help)
    add.add_argument("--status", type=_status, default="y",
                     help="y: posting allowed, n: not, m: moderated, x: no articles, "
                     "j: filed in junk, =other.group: filed there (RFC 6048)")  # fmt: skip
    add.add_argument("--description", default="", help="the LIST NEWSGROUPS line")
    add.add_argument("--expire-days", type=float, default=None,
                     help="expire articles older than this (default: the server's)")  # fmt: skip
    add.add_argument("--creator", default="", help="who created it (LIST ACTIVE.TIMES)")
    add.add_argument("--moderated", action="store_true", help="the same as --status m")
    add.add_argument("--moderator", default=None, metavar="ADDRESS",
                     help="where posts are mailed for approval (implies --status m)")  # fmt: skip
    add.add_argument("name", metavar="NAME")
    add.set_defaults(func=_group_add)

    remove = actions.add_parser("remove", help="remove a group and its articles")
    remove.add_argument("--db", default=DEFAULT_NEWS_DB, help=db_help)
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(func=_group_remove)

    listing = actions.add_parser("list", help="list the groups")
    listing.add_argument("--db", default=DEFAULT_NEWS_DB, help=db_help)
    listing.set_defaults(func=_group_list)

    expire = kinds.add_parser("expire", help="remove articles older than their group allows")
    expire.add_argument("--db", default=DEFAULT_NEWS_DB, help=db_help)
    expire.add_argument("--default-days", type=float, default=DEFAULT_EXPIRE_DAYS,
                        help="for groups without their own setting (0: never)")  # fmt: skip
    expire.add_argument("--history-days", type=float, default=DEFAULT_HISTORY_DAYS,
                        help="how long expired Message-IDs are remembered")  # fmt: skip
    expire.set_defaults(func=_expire)

    feeds = kinds.add_parser("feeds", help="show the outgoing feed queues")
    feeds.add_argument("--db", default=DEFAULT_NEWS_DB, help=db_help)
    feeds.set_defaults(func=_feeds)


def _group_add(args: argparse.Namespace) -> int:
    if args.moderator and ("@" not in args.moderator or any(c in args.moderator for c in " <>,")):
        raise StoreError(f"bad moderator address {args.moderator!r}")
    db = NewsDatabase(args.db)
    status = "m" if args.moderated or args.moderator else args.status
    try:
        created = db.add_group(
            args.name,
            status=status,
            description=args.description,
            creator=args.creator,
            expire_days=args.expire_days,
        )
        if args.moderator:
            set_moderator(db.db, args.name, args.moderator)
    finally:
        db.close()
    sys.stdout.write(f"{'added' if created else 'updated'} {args.name}\n")
    return 0


def _group_remove(args: argparse.Namespace) -> int:
    db = NewsDatabase(args.db)
    try:
        gone = db.remove_group(args.name)
    finally:
        db.close()
    sys.stdout.write(f"removed {args.name} ({gone} articles)\n")
    return 0


def _group_list(args: argparse.Namespace) -> int:
    db = NewsDatabase(args.db)
    try:
        for g in db.groups():
            sys.stdout.write(f"{g.name} {g.high} {g.low} {g.status} {g.count} {g.description}\n")
    finally:
        db.close()
    return 0


def _expire(args: argparse.Namespace) -> int:
    db = NewsDatabase(args.db)
    try:
        gone = db.expire(default_days=args.default_days, history_days=args.history_days)
    finally:
        db.close()
    sys.stdout.write(f"expired {gone} articles\n")
    return 0


def _feeds(args: argparse.Namespace) -> int:
    if not os.path.exists(args.db):
        raise StoreError(f"no news database at {args.db}")
    queue = FeedQueue(args.db)
    try:
        rows = queue.db.execute(
            "SELECT peer, count(*), min(queued), max(attempts) FROM feed_queue "
            "GROUP BY peer ORDER BY peer"
        ).fetchall()
    finally:
        queue.close()
    now = time.time()
    for peer, count, oldest, attempts in rows:
        sys.stdout.write(
            f"{peer} {count} queued, oldest {now - oldest:.0f} s, most attempts {attempts}\n"
        )
    if not rows:
        sys.stdout.write("no articles queued\n")
    return 0
