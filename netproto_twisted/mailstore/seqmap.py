"""A session's message sequence numbers <-> UIDs map, and what a refresh changed."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Changes", "SequenceMap"]


@dataclass(frozen=True)
class Changes:
    """What a folder rescan found against the previous snapshot.

    :ivar added: UIDs of new messages, ascending.
    :ivar expunged: UIDs of messages gone, ascending.
    :ivar flags_changed: UIDs whose flags changed, ascending.
    :ivar uid_validity_changed: the folder's UIDVALIDITY changed: every UID is void.
    """

    added: tuple[int, ...] = ()
    expunged: tuple[int, ...] = ()
    flags_changed: tuple[int, ...] = ()
    uid_validity_changed: bool = False

    def __bool__(self) -> bool:
        return bool(self.added or self.expunged or self.flags_changed or self.uid_validity_changed)


class SequenceMap:
    """Message sequence numbers (1-based positions) of ascending UIDs, as one session sees them."""

    def __init__(self, uids: Iterable[int] = ()) -> None:
        self.uids: list[int] = sorted(uids)

    def __len__(self) -> int:
        return len(self.uids)

    def uid(self, seq: int) -> int:
        """The UID at sequence number ``seq`` (IndexError if out of range)."""
        if seq < 1:
            raise IndexError(seq)
        return self.uids[seq - 1]

    def seq(self, uid: int) -> int | None:
        """The sequence number of ``uid``, or ``None``."""
        i = bisect_left(self.uids, uid)
        if i < len(self.uids) and self.uids[i] == uid:
            return i + 1
        return None

    def remove(self, uid: int) -> int | None:
        """Forget ``uid``; return the sequence number it had (for an EXPUNGE response)."""
        seq = self.seq(uid)
        if seq is not None:
            del self.uids[seq - 1]
        return seq

    def extend(self, uids: Iterable[int]) -> None:
        """Add new UIDs (all larger than the known ones, as UIDs only grow)."""
        for uid in sorted(uids):
            if not self.uids or uid > self.uids[-1]:
                self.uids.append(uid)

    @property
    def largest_uid(self) -> int:
        """The largest UID (0 when empty)."""
        return self.uids[-1] if self.uids else 0
