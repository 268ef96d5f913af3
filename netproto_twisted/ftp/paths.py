"""Virtual paths, sans-I/O: whatever a client sends, a path inside the user's root.

:func:`resolve_virtual` turns a command's argument, relative to the current
directory, into an absolute ``/``-separated path with no ``.`` or ``..``
left, so that it can never climb above ``/`` (the user's root):

- NUL is refused (C file APIs would cut the name there);
- backslashes are separators, as Windows clients mean them (``..\\..\\etc``
  is climbed and confined like ``../../etc``);
- names are Unicode NFC, so that two spellings of one name are one file;
- percent signs are literal: FTP has no URL decoding, so ``%2e%2e`` is a
  file name, not ``..``.

Symbolic links are the filesystem's business: the local disk resolves them
and refuses any that lead out (:mod:`netproto_twisted.ftp.fs`).
"""

from __future__ import annotations

import posixpath
import unicodedata

from netproto_twisted.ftp.errors import PathOutsideRoot

__all__ = ["MAX_PATH_LENGTH", "resolve_virtual", "split_virtual"]

#: The longest path argument accepted, in characters.
MAX_PATH_LENGTH = 4096


def resolve_virtual(cwd: str, argument: str) -> str:
    """The absolute virtual path ``argument`` names from ``cwd`` (see the module docstring).

    :raises PathOutsideRoot: for NUL or an over-long path (replied with 553/550).
    """
    if "\x00" in argument:
        raise PathOutsideRoot("NUL in path", 553)
    if len(argument) > MAX_PATH_LENGTH:
        raise PathOutsideRoot("path too long", 553)
    text = unicodedata.normalize("NFC", argument.replace("\\", "/"))
    joined = posixpath.join(cwd, text) if cwd else "/" + text
    normal = posixpath.normpath("/" + joined.lstrip("/"))
    # normpath keeps a leading "//"; and "/.." stays "/" already.
    return "/" + normal.lstrip("/")


def split_virtual(path: str) -> tuple[str, str]:
    """``(parent, name)`` of a virtual path (``("/", "")`` for the root)."""
    parent, name = posixpath.split(path)
    return parent or "/", name
