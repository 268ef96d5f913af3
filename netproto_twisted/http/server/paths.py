"""Mapping a request's path onto a directory without ever leaving it.

twisted.web splits the request path on ``/`` and percent-decodes each
segment, so an encoded slash (``%2F``) arrives *inside* a segment.  A segment
is refused when it is ``.`` or ``..``, holds ``/``, ``\\`` or NUL, or does not
decode; a symbolic link whose target lies outside the root is refused unless
the operator allows it.  The functions here are pure (a ``realpath`` aside).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

__all__ = ["contained", "safe_segments"]

_BAD_CHARS = ("/", "\\", "\x00")


def safe_segments(postpath: Sequence[bytes]) -> list[str] | None:
    """Return the decoded, checked path segments, or ``None`` if any is unsafe.

    Empty segments (``a//b``) are dropped, except that a trailing one is kept
    as ``""`` (it marks a directory URL: ``/docs/``).
    """
    segments: list[str] = []
    last = len(postpath) - 1
    for index, raw in enumerate(postpath):
        if not raw:
            if index == last and segments:
                segments.append("")
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if text in (".", "..") or any(c in text for c in _BAD_CHARS):
            return None
        segments.append(text)
    return segments


def contained(root_real: str, path: str) -> bool:
    """Whether ``path`` (followed through every symbolic link) lies inside ``root_real``."""
    real = os.path.realpath(path)
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)
