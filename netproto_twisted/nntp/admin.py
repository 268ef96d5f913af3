"""``netproto news group add|remove|list`` and ``netproto news expire``: the news store's admin."""

from __future__ import annotations

import argparse
import sys

from netproto_twisted.nntp.lists import is_group_status
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


def _group_add(args: argparse.Namespace) -> int:
    db = NewsDatabase(args.db)
    try:
        created = db.add_group(
            args.name,
            status=args.status,
            description=args.description,
            creator=args.creator,
            expire_days=args.expire_days,
        )
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
