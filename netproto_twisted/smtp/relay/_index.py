"""The relay's compact in-memory index of the spool: per entry only when it is due.

A relay with a large backlog must not hold every
:class:`~netproto_twisted.smtp.relay.queue.QueueEntry` (envelope, recipients,
replies: a few KiB each) in memory.  :class:`DueIndex` keeps, per entry id,
a :class:`Slot` of three fields, plus a heap ordered by due time; the relay
reads an entry from the spool when it comes due and lets it go after the
attempt.
"""

from __future__ import annotations

import heapq
from collections.abc import Container, Iterable, Iterator

__all__ = ["DueIndex", "Slot"]


class Slot:
    """What the relay remembers of one entry between attempts."""

    __slots__ = ("due", "flushed", "held")

    def __init__(self, due: float | None, held: bool) -> None:
        #: When the entry needs attention next (None: not scheduled, being worked on or held).
        self.due = due
        #: Whether the entry is on hold (``netproto queue hold``).
        self.held = held
        #: Whether a flush asked for every pending recipient to be tried now.
        self.flushed = False


class DueIndex:
    """Entry ids with their due times; :meth:`pop_due` hands out the due ones, earliest first."""

    def __init__(self) -> None:
        self._slots: dict[str, Slot] = {}
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._slots

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._slots))

    def get(self, entry_id: str) -> Slot | None:
        """Return the slot of ``entry_id``, or None if it is not indexed."""
        return self._slots.get(entry_id)

    def add(self, entry_id: str, due: float | None, held: bool) -> Slot:
        """Index a new entry (or replace what was known) and schedule it at ``due``."""
        slot = self._slots[entry_id] = Slot(None, held)
        self.schedule(entry_id, due)
        return slot

    def schedule(self, entry_id: str, due: float | None) -> None:
        """Set when ``entry_id`` is due (None: not scheduled)."""
        slot = self._slots.get(entry_id)
        if slot is None or slot.due == due:
            return
        slot.due = due
        if due is not None:
            heapq.heappush(self._heap, (due, entry_id))

    def discard(self, entry_id: str) -> None:
        """Forget ``entry_id`` (its heap item goes when it comes up)."""
        self._slots.pop(entry_id, None)

    def next_due(self) -> float | None:
        """Return the earliest due time of a scheduled entry that is not held."""
        heap = self._heap
        while heap:
            due, entry_id = heap[0]
            slot = self._slots.get(entry_id)
            if slot is not None and slot.due == due:
                if not slot.held:
                    return due
                slot.due = None  # held: unscheduled until released
            heapq.heappop(heap)  # superseded, forgotten or held
        return None

    def pop_due(self, now: float) -> str | None:
        """Unschedule and return the id of an entry due at ``now`` (earliest first), or None."""
        due = self.next_due()
        if due is None or due > now:
            return None
        _, entry_id = heapq.heappop(self._heap)
        self._slots[entry_id].due = None
        return entry_id

    def flush(self, now: float) -> None:
        """Mark every entry flushed and make those scheduled later due at ``now``."""
        for entry_id, slot in self._slots.items():
            slot.flushed = True
            if slot.due is not None and slot.due > now:
                slot.due = now
                heapq.heappush(self._heap, (now, entry_id))

    def merge(
        self,
        summaries: Iterable[tuple[str, float, bool]],
        now: float,
        *,
        busy: Container[str],
        recent: Container[str],
    ) -> None:
        """Apply a rescan of the spool: ``(id, due, held)`` of every entry on disk.

        Entries gone from disk are forgotten (unless ``busy``, being worked
        on, or ``recent``, spooled while the scan ran); new ones are added.
        What the index knows of an entry is never replaced by what the scan
        read (it may predate a save made meanwhile): only the hold flag is
        taken over, and a release makes the entry due at ``now``.  (The
        relay reads an entry afresh when it is due.)
        """
        on_disk = {entry_id: (due, held) for entry_id, due, held in summaries}
        for entry_id in list(self._slots):
            if entry_id not in on_disk and entry_id not in busy and entry_id not in recent:
                self.discard(entry_id)
        for entry_id, (due, held) in on_disk.items():
            slot = self._slots.get(entry_id)
            if slot is None:
                self.add(entry_id, due, held)
                continue
            released = slot.held and not held
            slot.held = held
            if entry_id in busy:
                continue
            if released:
                self.schedule(entry_id, now)
            elif slot.due is None and not held:
                self.schedule(entry_id, due)
