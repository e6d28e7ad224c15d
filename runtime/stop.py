"""A graceful stop on SIGTERM (what Kubernetes and systemd send) and SIGINT (Ctrl-C).

Left alone, Bytewax dies on SIGTERM and aborts its run loop on SIGINT with a
traceback. Here the first signal ends the input instead: every Kafka source
partition stops reading at its next batch, what was read flows through the
rest of the dataflow (the query, the UDF, the sinks, which flush or wait for
their broker's confirms), and Bytewax ends the run as at the end of a bounded
input, with a last snapshot. Open windows are not fired (`stop_requested` tells
the end-of-input steps), so a restart on the same recovery store goes on from
exactly there: nothing is lost and nothing is emitted twice.

If that takes longer than `DRAIN_TIMEOUT_S` (a broker that is away holds a
sink back), or a second signal comes, the run loop is interrupted at once:
the process still closes what is open and exits 0, and the restart resumes
from the last periodic snapshot, re-emitting byte-identical results.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
from types import FrameType

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
DRAIN_TIMEOUT_S = 20.0  # under Kubernetes' default grace period of 30 s, which ends in SIGKILL

_received: signal.Signals | None = None
_abrupt = False


def install_stop_handlers() -> None:
    """SIGTERM and SIGINT stop the run gracefully (call once, in the main thread, before it runs)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _on_stop_signal)


def stop_requested() -> signal.Signals | None:
    """The signal that asked the process to stop, if one did: sources end, end-of-input steps keep their state."""
    return _received


def _on_stop_signal(signum: int, frame: FrameType | None) -> None:
    global _received, _abrupt
    if _received is None:
        _received = signal.Signals(signum)
        log.info("%s received: stopping; the input ends here, what was read is finished and written, "
                 "then a last snapshot", _received.name)
        atexit.register(_say_stopped)
        watchdog = threading.Timer(DRAIN_TIMEOUT_S, _interrupt)
        watchdog.daemon = True
        watchdog.start()
        return
    if _abrupt:
        return  # already interrupted: a further signal must not interrupt the shutdown itself
    _abrupt = True
    # Bytewax unwinds its run loop with a panic, which Rust's hook reports with a backtrace
    # when RUST_BACKTRACE asks for one: not for a stop that was asked for.
    os.environ["RUST_BACKTRACE"] = "0"
    log.warning("stopping now, without waiting for the rest; a restart resumes from the last snapshot")
    raise KeyboardInterrupt  # Bytewax's run loop stops its workers on this


def _interrupt() -> None:
    log.warning("the stop did not finish within %g s", DRAIN_TIMEOUT_S)
    os.kill(os.getpid(), _received or signal.SIGTERM)


def _say_stopped() -> None:
    print(f"iot-monitoring: stopped on {_received.name if _received else 'a signal'}", file=sys.stderr)
