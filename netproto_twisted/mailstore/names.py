"""User and folder names: validation and their Maildir++ spelling on disk.

Folder names use ``.`` as the hierarchy separator (as Dovecot's Maildir++
layout does); ``INBOX`` (any case) is the user's root directory.  On disk a
folder ``Parent.Child`` is the directory ``.Parent.Child``; each component is
stored in IMAP modified UTF-7 (RFC 3501 section 5.1.3), as Dovecot does.
"""

from __future__ import annotations

import base64

from netproto_twisted.mailstore.errors import InvalidName

__all__ = [
    "HIERARCHY_SEPARATOR",
    "INBOX",
    "MAX_NAME_BYTES",
    "folder_dirname",
    "folder_from_dirname",
    "is_inbox",
    "mutf7_decode",
    "mutf7_encode",
    "validate_folder",
    "validate_user",
]

INBOX = "INBOX"
HIERARCHY_SEPARATOR = "."
MAX_NAME_BYTES = 255
"""Longest user name or on-disk folder directory name, in bytes."""

_FORBIDDEN = frozenset("/\\\x00")


def _bad_char(name: str) -> str | None:
    for ch in name:
        if ch in _FORBIDDEN:
            return f"contains {ch!r}"
        if ord(ch) < 0x20 or ord(ch) == 0x7F or 0x80 <= ord(ch) < 0xA0:
            return f"contains control character {ch!r}"
        if 0xD800 <= ord(ch) <= 0xDFFF:
            return "contains a lone surrogate"
    return None


def validate_user(user: str) -> str:
    """Return ``user`` if it is safe as one directory name, else raise :class:`InvalidName`."""
    if not isinstance(user, str) or not user:
        raise InvalidName("user", str(user), "empty")
    reason = _bad_char(user)
    if reason is None and user.startswith("."):
        reason = "starts with '.'"
    if reason is None and user.strip() != user:
        reason = "leading or trailing white space"
    if reason is None and len(user.encode("utf-8")) > MAX_NAME_BYTES:
        reason = f"longer than {MAX_NAME_BYTES} bytes"
    if reason is not None:
        raise InvalidName("user", user, reason)
    return user


def is_inbox(folder: str) -> bool:
    """Tell whether ``folder`` names the root (``INBOX``, case-insensitive)."""
    return folder.upper() == INBOX


def validate_folder(folder: str) -> str:
    """Return the canonical folder name (``INBOX`` upper-cased) or raise :class:`InvalidName`."""
    if not isinstance(folder, str) or not folder:
        raise InvalidName("folder", str(folder), "empty")
    if is_inbox(folder):
        return INBOX
    reason = _bad_char(folder)
    if reason is None:
        for part in folder.split(HIERARCHY_SEPARATOR):
            if not part:
                reason = "empty hierarchy component ('..' or a leading/trailing '.')"
                break
    if reason is None and len(folder_dirname_unchecked(folder).encode()) > MAX_NAME_BYTES:
        reason = f"longer than {MAX_NAME_BYTES} bytes on disk"
    if reason is not None:
        raise InvalidName("folder", folder, reason)
    return folder


def folder_dirname_unchecked(folder: str) -> str:
    """Return the Maildir++ directory name of ``folder`` without validating it."""
    return "." + HIERARCHY_SEPARATOR.join(
        mutf7_encode(part) for part in folder.split(HIERARCHY_SEPARATOR)
    )


def folder_dirname(folder: str) -> str:
    """Return the directory name (relative to the user root) of a folder; ``""`` for INBOX."""
    folder = validate_folder(folder)
    if folder == INBOX:
        return ""
    return folder_dirname_unchecked(folder)


def folder_from_dirname(dirname: str) -> str | None:
    """Return the folder name of a Maildir++ directory name, or None if it is not one."""
    if not dirname.startswith(".") or dirname in (".", ".."):
        return None
    try:
        parts = [mutf7_decode(part) for part in dirname[1:].split(HIERARCHY_SEPARATOR)]
        folder = HIERARCHY_SEPARATOR.join(parts)
        validate_folder(folder)
    except (InvalidName, ValueError):
        return None
    if is_inbox(folder):
        return None
    return folder


def _b64_utf16(text: str) -> str:
    raw = base64.b64encode(text.encode("utf-16-be")).decode("ascii")
    return raw.rstrip("=").replace("/", ",")


def mutf7_encode(text: str) -> str:
    """Encode a string in IMAP modified UTF-7."""
    out: list[str] = []
    pending: list[str] = []
    for ch in text:
        if 0x20 <= ord(ch) <= 0x7E:
            if pending:
                out.append("&" + _b64_utf16("".join(pending)) + "-")
                pending = []
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    if pending:
        out.append("&" + _b64_utf16("".join(pending)) + "-")
    return "".join(out)


def mutf7_decode(text: str) -> str:
    """Decode IMAP modified UTF-7; raise ValueError if it is malformed."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if not 0x20 <= ord(ch) <= 0x7E:
            raise ValueError("non-ASCII character in modified UTF-7")
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = text.find("-", i + 1)
        if end < 0:
            raise ValueError("unterminated base64 run")
        chunk = text[i + 1 : end]
        if not chunk:
            out.append("&")
        else:
            padded = chunk.replace(",", "/") + "=" * (-len(chunk) % 4)
            try:
                raw = base64.b64decode(padded, validate=True)
                decoded = raw.decode("utf-16-be")
            except (ValueError, UnicodeDecodeError) as exc:
                raise ValueError("bad base64 run") from exc
            if mutf7_encode(decoded) != "&" + chunk + "-":
                raise ValueError("non-canonical modified UTF-7")
            out.append(decoded)
        i = end + 1
    return "".join(out)
