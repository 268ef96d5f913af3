"""The ``netproto`` administration command (``netproto user add NAME`` ...).

Each subcommand lives in a module listed in :data:`COMMAND_MODULES`; such a
module provides ``add_parser(subparsers)``, which adds its parser and sets
``func`` (``Callable[[argparse.Namespace], int]``) as a default.  A handler
reports failures by raising :class:`~netproto_twisted.core.errors.NetprotoError`
(or OSError): :func:`main` prints one line on stderr and returns 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from netproto_twisted.core.errors import NetprotoError

__all__ = ["COMMAND_MODULES", "EXIT_ERROR", "build_parser", "main"]

#: Modules that add a subcommand: ``user`` (the password file), ``queue`` (the relay queue),
#: ``news`` (the news store's groups), ``fetch`` (polite downloads).
COMMAND_MODULES: tuple[str, ...] = (
    "netproto_twisted.core.passwords",
    "netproto_twisted.smtp.relay.queue_cli",
    "netproto_twisted.nntp.admin",
    "netproto_twisted.http.fetch",
)
#: Exit status of a failed command (bad name, unknown user, missing file, usage).
EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser from every module in :data:`COMMAND_MODULES`."""
    parser = argparse.ArgumentParser(
        prog="netproto", description="Administer netproto_twisted servers."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``netproto`` command with *argv* (default: sys.argv[1:]); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # usage errors (argparse printed them) and --help
        return e.code if isinstance(e.code, int) else EXIT_ERROR
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (NetprotoError, OSError) as e:
        sys.stderr.write(f"{parser.prog}: error: {e}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write(f"{parser.prog}: interrupted\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
