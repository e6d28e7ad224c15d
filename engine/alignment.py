"""Event-time alignment of the partitions one process reads.

The reader takes the same number of records from each partition in turn.
When a backlog is replayed, a partition that is sparse in event time gets
ahead of the others, and since the global watermark is the slowest
partition's, every window the fast one opens stays open: the state grows
with the length of the replay instead of staying at a few windows.

Flink answers this with watermark alignment (`scan.watermark.alignment.*`):
a split whose watermark is more than a maximum drift ahead of the group's
pauses until the others catch up. This is the same rule for the partitions
of one source in one process (Bytewax workers of a process share it; other
processes are not seen):

- a partition may read unless its watermark is more than `max_drift_ms`
  ahead of the lowest watermark among the *other* partitions that still
  have a backlog;
- a partition that has caught up with the end of its log, has no watermark
  yet, or has finished does not hold anyone back, so live traffic (every
  partition caught up) is never paused, and an empty partition never stalls
  a replay;
- the partition with the lowest watermark among those with a backlog is
  never paused, so the replay always makes progress.

Pausing changes only the order in which partitions are read. Which records
are late may depend on that order anyway (docs/semantics.md); alignment makes a
replay's order closer to the order the events happened in.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class _Progress:
    watermark_ms: int | None = None
    has_backlog: bool = True


class EventTimeAlignment:
    """Watermarks and backlogs of one source's partitions in this process
    (one per `KafkaBatchSource`, which every worker of the process shares)."""

    def __init__(self, max_drift_ms: int):
        self.max_drift_ms = max_drift_ms
        self._partitions: dict[int, _Progress] = {}
        self._lock = threading.Lock()  # workers of one process are threads

    def join(self, partition: int) -> None:
        with self._lock:
            self._partitions.setdefault(partition, _Progress())

    def leave(self, partition: int) -> None:
        """A finished (or closed) partition holds nobody back."""
        with self._lock:
            self._partitions.pop(partition, None)

    def report(self, partition: int, watermark_ms: int | None, has_backlog: bool) -> None:
        with self._lock:
            progress = self._partitions.setdefault(partition, _Progress())
            progress.watermark_ms = watermark_ms
            progress.has_backlog = has_backlog

    def may_read(self, partition: int) -> bool:
        """False while this partition is too far ahead of the others' backlog."""
        with self._lock:
            own = self._partitions.get(partition)
            if own is None or own.watermark_ms is None:
                return True
            others = [
                p.watermark_ms for q, p in self._partitions.items()
                if q != partition and p.has_backlog and p.watermark_ms is not None
            ]
        return not others or own.watermark_ms - min(others) <= self.max_drift_ms
