"""A graceful stop on SIGTERM (what Kubernetes and systemd send) and SIGINT (Ctrl-C).

Bytewax's run loop stops its workers when a signal handler raises
`KeyboardInterrupt`, then raises an error out of `bytewax.run`; left alone,
SIGTERM would kill the process outright and SIGINT would end it with a
traceback and status 1. Every sink here flushes (Kafka) or waits for the
broker's confirms (RabbitMQ) before its batch returns, so when the loop stops
nothing accepted is still in a buffer: the stop closes what is open, says so
in one line and exits 0. A restart on the same recovery store resumes from
its last snapshot, re-emitting byte-identical results (docs/reliability.md).
"""

from __future__ import annotations

import logging
import os
import signal
from types import FrameType

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

_received: signal.Signals | None = None


def install_stop_handlers() -> None:
    """SIGTERM and SIGINT stop the run gracefully (call once, in the main thread, before it runs)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _on_stop_signal)


def stop_requested() -> signal.Signals | None:
    """The signal that asked the process to stop, if one did."""
    return _received


def _on_stop_signal(signum: int, frame: FrameType | None) -> None:
    global _received
    if _received is not None:
        return  # already stopping: a second signal must not interrupt the shutdown itself
    _received = signal.Signals(signum)
    # Bytewax unwinds its run loop with a panic, which Rust's hook reports with a backtrace
    # when RUST_BACKTRACE asks for one: not for a stop that was asked for.
    os.environ["RUST_BACKTRACE"] = "0"
    log.info("%s received: stopping; a restart on the same recovery store resumes from its last snapshot",
             _received.name)
    raise KeyboardInterrupt
