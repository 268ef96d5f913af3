"""The worker side of :mod:`.prefetch`: list a folder, read its headers and envelopes.

Runs in a :class:`~netproto_twisted.core.procpool.ProcessPool` worker (or
anywhere: plain blocking functions over the folder's directory).  Imports
only what it uses, so that a worker starts quickly.
"""

from __future__ import annotations

import os
import stat

from netproto_twisted.imap4.server import mime
from netproto_twisted.mailstore.eol import read_head
from netproto_twisted.mailstore.filenames import (
    INFO_SEPARATOR,
    arrival_key,
    is_acceptable_filename,
)
from netproto_twisted.mailstore.snapshot import crlf_size_of

__all__ = ["MAX_HEADER", "list_messages", "read_heads"]

#: A header larger than this is left for the FETCH to read (it is not shipped back).
MAX_HEADER = 64 * 1024
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def list_messages(path: str) -> list[tuple[str, str]]:
    """``(subdir, file name)`` of each message file of a folder, in arrival order (blocking).

    Regular files with acceptable names only (by the directory entry's type,
    no ``stat``); a base in both ``new/`` and ``cur/`` is listed once, from
    ``cur/``, as the folder's scan does.
    """
    found: dict[str, tuple[str, str]] = {}
    for subdir in ("new", "cur"):
        try:
            with os.scandir(os.path.join(path, subdir)) as entries:
                for entry in entries:
                    name = entry.name
                    try:
                        regular = entry.is_file(follow_symlinks=False)
                    except OSError:
                        continue
                    if regular and is_acceptable_filename(name):
                        found[name.partition(INFO_SEPARATOR)[0]] = (subdir, name)
        except FileNotFoundError:
            continue
    return [found[base] for base in sorted(found, key=arrival_key)]


def read_heads(
    path: str, files: list[tuple[str, str]]
) -> list[tuple[str, int, bytes, bytes]]:
    """``(base, CRLF size, header, ENVELOPE)`` of each file that can be read (blocking).

    A file moved between ``new/`` and ``cur/`` meanwhile is looked for in the
    other; one that is gone, not a regular file, or with a header over
    :data:`MAX_HEADER` is left out.
    """
    out: list[tuple[str, int, bytes, bytes]] = []
    other = {"new": "cur", "cur": "new"}
    for subdir, name in files:
        try:
            fd = os.open(os.path.join(path, subdir, name), _OPEN_FLAGS)
        except FileNotFoundError:
            base = name.partition(INFO_SEPARATOR)[0]
            moved = _find(os.path.join(path, other[subdir]), base)
            if moved is None:
                continue
            try:
                fd = os.open(moved, _OPEN_FLAGS)
            except OSError:
                continue
            name = os.path.basename(moved)
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            header, size = read_head(fd, crlf_size_of(name))
        except OSError:
            continue
        finally:
            os.close(fd)
        if len(header) > MAX_HEADER:
            continue
        envelope = mime.envelope_bytes(mime.parse_headers(header))
        out.append((name.partition(INFO_SEPARATOR)[0], size, header, envelope))
    return out


def _find(directory: str, base: str) -> str | None:
    try:
        names = os.listdir(directory)
    except OSError:
        return None
    for name in names:
        if name == base or name.startswith(base + INFO_SEPARATOR):
            return os.path.join(directory, name)
    return None
