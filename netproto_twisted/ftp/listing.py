"""Directory listings, sans-I/O: ``LIST`` lines in ``ls -l`` style, and parsing them back.

A server's ``LIST`` output is not specified; clients fall back on parsing it
when ``MLSD`` is missing.  :func:`format_list_line` writes the ``ls -l``
style every Unix server uses; :func:`parse_list_line` reads that style and
the MS-DOS/IIS one (``01-16-24  02:03PM  <DIR>  name``) into
:class:`ListEntry` values.
"""

from __future__ import annotations

import calendar
import re
import stat as stat_module
import time
from dataclasses import dataclass

from netproto_twisted.ftp._wire import CommandSyntaxError

__all__ = ["ListEntry", "format_list_line", "parse_list_line"]

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: ``ls`` shows the year instead of the time for files older than about six months.
_HALF_YEAR = 182 * 24 * 3600


@dataclass(frozen=True)
class ListEntry:
    """One parsed listing line.

    :ivar name: the file name (for a Unix symlink, without ``-> target``).
    :ivar type: ``"file"``, ``"dir"`` or ``"link"``.
    :ivar size: bytes, or ``None`` when the line does not say (directories on MS-DOS).
    :ivar modify: a POSIX timestamp when one could be read, else ``None``.
    :ivar mode: the permission string (``rwxr-xr-x``), ``""`` if not given.
    :ivar target: a symlink's target, else ``None``.
    """

    name: str
    type: str
    size: int | None
    modify: float | None = None
    mode: str = ""
    target: str | None = None


def format_list_line(
    name: str,
    mode: int,
    size: int,
    mtime: float,
    *,
    nlink: int = 1,
    owner: str = "ftp",
    group: str = "ftp",
    now: float | None = None,
) -> str:
    """One ``ls -l`` line (no line ending); the date is UTC, the name as given."""
    now = time.time() if now is None else now
    stamp = time.gmtime(max(0.0, mtime))
    month = _MONTHS[stamp.tm_mon - 1]
    if abs(now - mtime) > _HALF_YEAR:
        when = f"{month} {stamp.tm_mday:2d}  {stamp.tm_year}"
    else:
        when = f"{month} {stamp.tm_mday:2d} {stamp.tm_hour:02d}:{stamp.tm_min:02d}"
    perms = stat_module.filemode(mode)
    return f"{perms} {nlink:3d} {owner:<8} {group:<8} {size:>12d} {when} {name}"


_UNIX = re.compile(
    r"^(?P<mode>[-dlbcpsDw?][-rwxsStTlL?]{9})[+.@]?\s+"
    r"(?:\d+\s+)?(?P<owner>\S+)\s+(?:(?P<group>\S+)\s+)?(?P<size>\d+)\s+"
    r"(?P<month>[A-Za-z]{3})\s+(?P<day>\d{1,2})\s+(?P<when>\d{1,2}:\d{2}|\d{4})\s(?P<name>.+)$"
)
_DOS = re.compile(
    r"^(?P<month>\d{2})-(?P<day>\d{2})-(?P<year>\d{2,4})\s+(?P<hour>\d{1,2}):(?P<minute>\d{2})"
    r"(?P<ampm>[AaPp][Mm])?\s+(?:(?P<dir><DIR>)|(?P<size>\d+))\s+(?P<name>.+)$"
)


def _unix_time(month: str, day: str, when: str, now: float) -> float | None:
    try:
        mon = _MONTHS.index(month.capitalize()) + 1
    except ValueError:
        return None
    if ":" in when:
        hour, minute = (int(x) for x in when.split(":"))
        year = time.gmtime(now).tm_year
        try:
            stamp = calendar.timegm((year, mon, int(day), hour, minute, 0, 0, 0, 0))
        except ValueError:
            return None
        if stamp > now + 86400:  # a date in the future belongs to last year
            stamp = calendar.timegm((year - 1, mon, int(day), hour, minute, 0, 0, 0, 0))
        return float(stamp)
    return float(calendar.timegm((int(when), mon, int(day), 0, 0, 0, 0, 0, 0)))


def parse_list_line(line: str, *, now: float | None = None) -> ListEntry | None:
    """Parse one ``LIST`` line (Unix or MS-DOS style); ``None`` for ``total N`` and blanks.

    :raises CommandSyntaxError: for a line in neither style.
    """
    line = line.rstrip("\r\n")
    if not line.strip() or line.startswith("total "):
        return None
    now = time.time() if now is None else now
    m = _UNIX.match(line)
    if m is not None:
        kind = {"d": "dir", "l": "link"}.get(m["mode"][0], "file")
        name, target = m["name"], None
        if kind == "link" and " -> " in name:
            name, target = name.split(" -> ", 1)
        if not 1 <= int(m["day"]) <= 31:
            raise CommandSyntaxError(f"bad day in listing line: {line!r}")
        return ListEntry(
            name=name,
            type=kind,
            size=int(m["size"]),
            modify=_unix_time(m["month"], m["day"], m["when"], now),
            mode=m["mode"][1:],
            target=target,
        )
    m = _DOS.match(line)
    if m is not None:
        year = int(m["year"])
        if year < 100:
            year += 2000 if year < 70 else 1900
        hour = int(m["hour"]) % 12 if m["ampm"] else int(m["hour"])
        if m["ampm"] and m["ampm"].upper() == "PM":
            hour += 12
        try:
            modify: float | None = float(
                calendar.timegm((year, int(m["month"]), int(m["day"]), hour, int(m["minute"]),
                                 0, 0, 0, 0))
            )  # fmt: skip
            time.gmtime(modify)
        except (ValueError, OverflowError):
            modify = None
        is_dir = m["dir"] is not None
        return ListEntry(
            name=m["name"],
            type="dir" if is_dir else "file",
            size=None if is_dir else int(m["size"]),
            modify=modify,
        )
    raise CommandSyntaxError(f"unrecognised listing line: {line!r}")
