"""Dovecot's ``dovecot-uidlist`` file, sans I/O: parse and serialise.

Version 3 (Dovecot 1.1 and later)::

    3 V<uidvalidity> N<nextuid> G<mailbox guid> [<key><value> ...]
    <uid> [<key><value> ...] :<base file name>

Version 1 (Dovecot 1.0, Courier's ``courierimapuiddb``) is read too::

    1 <uidvalidity> <nextuid>
    <uid> <base file name>

Dovecot appends records without rewriting the header, so the header's
``N`` is only a lower bound: the next UID is the larger of ``N`` and the
last record's UID + 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

__all__ = [
    "UidList",
    "UidListError",
    "UidRecord",
    "new_guid",
    "parse_uidlist",
    "serialize_uidlist",
]

_MAX_UID = 2**32 - 1


class UidListError(ValueError):
    """The uidlist file is corrupt (the mailbox gets a new UIDVALIDITY)."""


@dataclass
class UidRecord:
    """One message of the uidlist: its UID, base file name and extension fields."""

    uid: int
    base: str
    extensions: list[str] = field(default_factory=list)
    """Raw ``<key><value>`` fields such as ``W2291``, kept as read."""


@dataclass
class UidList:
    """The parsed contents of a ``dovecot-uidlist`` file."""

    uid_validity: int
    next_uid: int = 1
    guid: str = ""
    header_extensions: list[str] = field(default_factory=list)
    records: list[UidRecord] = field(default_factory=list)
    version: int = 3

    def by_base(self) -> dict[str, UidRecord]:
        """Return the records keyed by base file name."""
        return {record.base: record for record in self.records}


def new_guid() -> str:
    """Return a new random 128-bit mailbox GUID as 32 hex digits."""
    return os.urandom(16).hex()


def _uint(text: str, what: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise UidListError(f"bad {what}: {text!r}")
    value = int(text)
    if not 0 < value <= _MAX_UID:
        raise UidListError(f"{what} out of range: {value}")
    return value


def _valid_base(base: str) -> bool:
    return bool(base) and not any(ch in base for ch in "\r\n\x00/:")


def parse_uidlist(data: bytes) -> UidList:
    """Parse a uidlist file; raise :class:`UidListError` if it is corrupt."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UidListError("not UTF-8") from exc
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise UidListError("empty file")
    header = lines[0].split(" ")
    if header[0] == "3":
        result = _parse_v3_header(header[1:])
    elif header[0] == "1":
        if len(header) != 3:
            raise UidListError("bad version 1 header")
        result = UidList(
            uid_validity=_uint(header[1], "uidvalidity"),
            next_uid=_uint(header[2], "next uid"),
            version=1,
        )
    else:
        raise UidListError(f"unsupported version {header[0]!r}")
    seen: set[str] = set()
    last_uid = 0
    for line in lines[1:]:
        record = _parse_v3_record(line) if result.version == 3 else _parse_v1_record(line)
        if record.uid <= last_uid:
            raise UidListError(f"UID {record.uid} not above {last_uid}")
        last_uid = record.uid
        if record.base in seen:
            continue  # a duplicate: the first UID wins
        seen.add(record.base)
        result.records.append(record)
    if last_uid >= result.next_uid:
        if last_uid == _MAX_UID:
            raise UidListError("UID space exhausted")
        result.next_uid = last_uid + 1
    return result


def _parse_v3_header(fields: list[str]) -> UidList:
    values: dict[str, str] = {}
    extra: list[str] = []
    for token in fields:
        if not token:
            raise UidListError("empty header field")
        if token[0] in "VNG" and token[0] not in values:
            values[token[0]] = token[1:]
        else:
            extra.append(token)
    if "V" not in values or "N" not in values:
        raise UidListError("header without V or N")
    guid = values.get("G", "")
    if guid and (len(guid) != 32 or any(c not in "0123456789abcdef" for c in guid.lower())):
        raise UidListError(f"bad mailbox GUID {guid!r}")
    return UidList(
        uid_validity=_uint(values["V"], "uidvalidity"),
        next_uid=_uint(values["N"], "next uid"),
        guid=guid.lower(),
        header_extensions=extra,
    )


def _parse_v3_record(line: str) -> UidRecord:
    head, sep, base = line.partition(" :")
    if not sep:
        raise UidListError(f"record without ' :': {line[:80]!r}")
    fields = head.split(" ")
    uid = _uint(fields[0], "UID")
    extensions = fields[1:]
    if any(not ext or not ext[0].isascii() or not ext[0].isupper() for ext in extensions):
        raise UidListError(f"bad extension field in {line[:80]!r}")
    if not _valid_base(base):
        raise UidListError(f"bad file name in {line[:80]!r}")
    return UidRecord(uid=uid, base=base, extensions=extensions)


def _parse_v1_record(line: str) -> UidRecord:
    uid_text, sep, base = line.partition(" ")
    if not sep:
        raise UidListError(f"bad version 1 record {line[:80]!r}")
    base = base.partition(":")[0]
    if not _valid_base(base):
        raise UidListError(f"bad file name in {line[:80]!r}")
    return UidRecord(uid=_uint(uid_text, "UID"), base=base)


def serialize_uidlist(uidlist: UidList) -> bytes:
    """Serialise in version 3 (a missing GUID is generated and stored back)."""
    if not uidlist.guid:
        uidlist.guid = new_guid()
    next_uid = uidlist.next_uid
    if uidlist.records:
        next_uid = max(next_uid, uidlist.records[-1].uid + 1)
    head = [f"3 V{uidlist.uid_validity} N{next_uid} G{uidlist.guid}", *uidlist.header_extensions]
    out = [" ".join(head)]
    for record in uidlist.records:
        if record.extensions:
            out.append(" ".join([str(record.uid), *record.extensions]) + " :" + record.base)
        else:
            out.append(f"{record.uid} :{record.base}")
    return ("\n".join(out) + "\n").encode("utf-8")
