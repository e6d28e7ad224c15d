"""Resources a dataflow opens at run time and closes at shutdown.

Sinks and sources have their own `close`, which Bytewax calls. A stage
inside a mapping step (the UDF client: its channels are opened by the first
call, one per worker thread) has no such hook, so it is registered here and
closed when the process exits or when the run ends (`close_all`).
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Protocol

log = logging.getLogger(__name__)


class Closeable(Protocol):
    def close(self) -> None: ...


_open: list[Closeable] = []
_lock = threading.Lock()


def close_at_shutdown(resource: Closeable) -> Closeable:
    """Register `resource` to be closed at shutdown; returns it."""
    with _lock:
        if not _open:
            atexit.register(close_all)
        _open.append(resource)
    return resource


def close_all() -> None:
    """Close every registered resource, newest first; a failure is logged, not raised."""
    with _lock:
        resources, _open[:] = list(_open), []
    for resource in reversed(resources):
        try:
            resource.close()
        except Exception as exc:  # noqa: BLE001 - shutting down: report and go on with the rest
            log.warning("closing %s at shutdown failed: %s", type(resource).__name__, exc)
