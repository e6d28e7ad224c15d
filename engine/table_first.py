"""The reading order of a join between a table and a stream of events.

A join of events (plays, clicks: an input with an event time) with a table
(songs, users: an input without one, which the Streaming Runtime's samples
load first) pairs each event when the second of its two rows arrives. Live,
the table is there long before the events. But a first start or a replay
finds both as backlogs, and the reader takes them side by side: events read
before their table row are held, then released all at once when it comes,
key after key, and a windowed query downstream judges the earlier ones late.

So the events wait while the table's backlog is read: every table partition
this process reads must have reached the end of its log once (or finished,
or closed). This changes only the order of reads, which a regular join's
semantics leave open. It is bounded by `max_wait_s`, counted from the first
time the events ask, for a table whose broker does not answer or that is
written faster than it is read. Workers of one process share the gate;
another process's table partitions are not seen.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)


class TableFirst:
    def __init__(self, table: str, events: str, max_wait_s: float = 30.0):
        self.table, self.events = table, events
        self.max_wait_s = max_wait_s
        self._loading: set[int] = set()
        self._lock = threading.Lock()  # workers of one process are threads
        self._first_ask: float | None = None
        self._open = False

    # --- the table's partitions ---------------------------------------------------------

    def loading(self, partition: int) -> None:
        with self._lock:
            if not self._open:
                self._loading.add(partition)

    def loaded(self, partition: int) -> None:
        """The partition reached the end of its log (or finished, or closed)."""
        with self._lock:
            self._loading.discard(partition)

    # --- the events' partitions ---------------------------------------------------------

    def may_read(self, now_s: float | None = None) -> bool:
        if self._open:
            return True
        now = time.monotonic() if now_s is None else now_s
        with self._lock:
            if self._first_ask is None:
                self._first_ask = now
            if not self._loading:
                self._open = True
            elif now - self._first_ask >= self.max_wait_s:
                self._open = True
                log.warning("%s: reading it although %s has not reached the end of its log after %g s",
                            self.events, self.table, self.max_wait_s)
            return self._open
