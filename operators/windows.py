"""The Bytewax step around `WindowEngine`.

All partition batches of one query meet in one stateful step (a single key),
which holds the global watermark; the heavy per-record work was already done
in parallel beside each partition's reader (`engine.partition_stage`), so
what reaches this step is grouped rows, not events. A timer wakes it so idle
partitions and quiet input still close windows. It emits one `Fired` per
step that fired something or found late records.
"""

from __future__ import annotations

import logging
import pickle
import time
from datetime import datetime, timedelta, timezone
from typing import Callable

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.operators import StatefulLogic

from engine.records import Fired, PartitionBatch
from engine.window_engine import EngineState, WindowEngine
from runtime.metrics import CounterDeltas, publish_watermarks, totals_line
from runtime.stop import stop_requested

log = logging.getLogger(__name__)


class WindowLogic(StatefulLogic[PartitionBatch, Fired, bytes]):
    def __init__(self, engine: WindowEngine, processor: str, tick_s: float):
        self.engine = engine
        self.processor = processor
        self.tick = timedelta(seconds=tick_s)
        self.metrics = CounterDeltas(processor)
        self.metrics.seen = dict(engine.state.counters)  # a restored engine's totals were published before

    def _done(self, fired: Fired) -> tuple[list[Fired], bool]:
        state = self.engine.state
        self.metrics.publish(state.counters)
        publish_watermarks(
            self.processor,
            {str(name): clock.watermark_ms for name, clock in state.partitions.items()},
            state.fired_ms,
            self.engine.open_window_count,
        )
        return ([fired] if fired.results or fired.late else []), StatefulLogic.RETAIN

    def on_item(self, value: PartitionBatch) -> tuple[list[Fired], bool]:
        return self._done(self.engine.on_batch(value, time.time() * 1000))

    def on_notify(self) -> tuple[list[Fired], bool]:
        return self._done(self.engine.on_tick(time.time() * 1000))

    def on_eof(self) -> tuple[list[Fired], bool]:
        if stop_requested():  # the input ended because the process is stopping: the windows stay open
            done = self._done(Fired())
            log.info("%s", totals_line(self.processor, self.engine.state.counters, "stopped, windows kept open"))
            return done
        done = self._done(self.engine.on_end())
        log.info("%s", totals_line(self.processor, self.engine.state.counters))
        return done

    def notify_at(self) -> datetime:
        return datetime.now(timezone.utc) + self.tick

    def snapshot(self) -> bytes:
        """The state, pickled now (a copy that cannot change afterwards; several
        times cheaper than a deep copy that Bytewax then pickles again)."""
        return pickle.dumps(self.engine.state, protocol=pickle.HIGHEST_PROTOCOL)


def restored(state: bytes | EngineState | None) -> EngineState | None:
    """A snapshot as the engine takes it (a recovery store written before
    snapshots were pickled holds the state itself)."""
    return pickle.loads(state) if isinstance(state, bytes) else state


def window_aggregate(
    step_id: str,
    up: Stream[PartitionBatch],
    make_engine: Callable[[EngineState | None], WindowEngine],
    processor: str,
    tick_s: float = 0.2,
) -> Stream[Fired]:
    """Merge the partitions' batches into fired window results and late records."""
    keyed = op.key_on(f"{step_id}_key", up, lambda _batch: "all")
    out = op.stateful(step_id, keyed, lambda state: WindowLogic(make_engine(restored(state)), processor, tick_s))
    return op.key_rm(f"{step_id}_unkey", out)
