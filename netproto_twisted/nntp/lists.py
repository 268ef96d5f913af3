"""The server's RFC 6048 lists (MOTD, SUBSCRIPTIONS, DISTRIBUTIONS, MODERATORS, DISTRIB.PATS).

:class:`NewsLists` holds what ``LIST MOTD``, ``LIST SUBSCRIPTIONS``,
``LIST DISTRIBUTIONS``, ``LIST MODERATORS`` and ``LIST DISTRIB.PATS``
answer; :func:`load_lists` reads them from files in INN's formats
(``motd.news``, ``subscriptions``, ``distributions``, ``moderators``,
``distrib.pats``).  :func:`is_group_status` checks a group's status field
(RFC 6048 2.1: ``y``, ``n``, ``m``, ``x``, ``j``, ``=other.group``).
Nothing here does network I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from netproto_twisted.core.errors import ConfigError

__all__ = ["GROUP_STATUSES", "NewsLists", "is_group_status", "load_lists"]

#: The one-letter group statuses of RFC 6048 2.1 (besides ``=group``).
GROUP_STATUSES = frozenset("ynmxj")

_GROUP_NAME = re.compile(r"[A-Za-z0-9+_\-]+(\.[A-Za-z0-9+_\-]+)*\Z")


def is_group_status(status: str) -> bool:
    """Whether ``status`` is a valid LIST ACTIVE status (``y n m x j`` or ``=group.name``).

    ``y`` posting allowed; ``n`` no local posting (articles still come from
    peers); ``m`` moderated; ``x`` no articles at all, posted or fed;
    ``j`` articles are filed in ``junk`` here (and passed on);
    ``=other.group`` articles are filed in that group instead.
    """
    if status in GROUP_STATUSES:
        return True
    return status.startswith("=") and bool(_GROUP_NAME.match(status[1:]))


def _clean(lines: tuple[str, ...], what: str) -> tuple[str, ...]:
    for line in lines:
        if "\r" in line or "\n" in line or "\0" in line:
            raise ConfigError(what, "a line may not contain CR, LF or NUL")
    return lines


@dataclass(frozen=True)
class NewsLists:
    """What the RFC 6048 LIST keywords answer; ``None`` means "not kept here" (``503``).

    :ivar motd: the message of the day, one string per line (``LIST MOTD``).
    :ivar subscriptions: the groups a new reader subscribes to (``LIST SUBSCRIPTIONS``).
    :ivar distributions: ``(name, description)`` pairs (``LIST DISTRIBUTIONS``).
    :ivar moderators: ``(wildmat, address)`` pairs, ``%s`` in the address
        standing for the group name with dots made dashes (``LIST MODERATORS``).
    :ivar distrib_pats: ``weight:wildmat:value`` lines (``LIST DISTRIB.PATS``).
    """

    motd: tuple[str, ...] | None = None
    subscriptions: tuple[str, ...] | None = None
    distributions: tuple[tuple[str, str], ...] | None = None
    moderators: tuple[tuple[str, str], ...] | None = None
    distrib_pats: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.motd is not None:
            _clean(self.motd, "motd")
        if self.subscriptions is not None:
            for name in self.subscriptions:
                if not _GROUP_NAME.match(name):
                    raise ConfigError("subscriptions", f"not a group name: {name!r}")
        named = ((self.distributions, "distributions"), (self.moderators, "moderators"))
        for pairs, what in named:
            for key, value in pairs or ():
                _clean((key, value), what)
                if not key or " " in key or "\t" in key or ":" in key:
                    raise ConfigError(what, f"bad first field: {key!r}")
        _clean(self.distrib_pats, "distrib_pats")

    def moderator_lines(self) -> list[str]:
        """The ``LIST MODERATORS`` lines: ``wildmat:address``."""
        return [f"{pattern}:{address}" for pattern, address in self.moderators or ()]

    def distribution_lines(self) -> list[str]:
        """The ``LIST DISTRIBUTIONS`` lines: ``name<TAB>description``."""
        return [f"{name}\t{text}" for name, text in self.distributions or ()]


def _read(path: str | Path, what: str) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(str(path), f"cannot read the {what} file: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), f"the {what} file is not UTF-8") from None
    return text.splitlines()


def _entries(path: str | Path, what: str) -> list[str]:
    """Lines that are not blank and not ``#`` comments, stripped."""
    return [s for s in (line.strip() for line in _read(path, what)) if s and not s.startswith("#")]


def load_lists(
    *,
    motd: str | Path | None = None,
    subscriptions: str | Path | None = None,
    distributions: str | Path | None = None,
    moderators: str | Path | None = None,
    distrib_pats: str | Path | None = None,
) -> NewsLists:
    """Read the lists from files in INN's formats (a missing argument: not kept).

    ``motd``: free text.  ``subscriptions``: a group name per line.
    ``distributions``: ``name:description`` per line.  ``moderators``:
    ``wildmat:address``.  ``distrib_pats``: ``weight:wildmat:value``.
    ``#`` starts a comment line in all but ``motd``.

    :raises ConfigError: naming the file that cannot be read or parsed.
    """

    def pairs(path: str | Path, what: str) -> tuple[tuple[str, str], ...]:
        out = []
        for line in _entries(path, what):
            key, sep, value = line.partition(":")
            if not sep:
                raise ConfigError(str(path), f"expected name:value, got {line!r}")
            out.append((key.strip(), value.strip()))
        return tuple(out)

    return NewsLists(
        motd=tuple(_read(motd, "motd")) if motd is not None else None,
        subscriptions=(
            tuple(_entries(subscriptions, "subscriptions")) if subscriptions is not None else None
        ),
        distributions=pairs(distributions, "distributions") if distributions is not None else None,
        moderators=pairs(moderators, "moderators") if moderators is not None else None,
        distrib_pats=tuple(_entries(distrib_pats, "distrib.pats")) if distrib_pats else (),
    )
