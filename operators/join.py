"""`join`: a stream-stream join as one composite Bytewax step.

    left reads  -> (per partition, beside the reader: decode, dead-letter, filter)  \\
                                                                                       -> join step -> JoinOut(results, dead)
    right reads -> (per partition, beside the reader: decode, dead-letter, filter)  /

The join step is one stateful step with a single key, like the window step
(`operators.windows`): both inputs' rows meet in one place, in one order, so
"a pair is emitted when its second row arrives" is decided once for the
whole query, and what crosses the dataflow stays one item per read (keyed by
the join key, every distinct key of a read would be an item of its own, and
the TTL a timer per key). The price is that the join itself runs on one
worker (decoding and filtering still run beside each partition's reader),
and that a snapshot holds the whole state (docs/performance.md measures it).
The state is pickled when the snapshot is taken, which is also the copy that
keeps it from changing afterwards.
"""

from __future__ import annotations

import logging
import pickle
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from operator import attrgetter
from typing import Callable

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulLogic

from engine.join_stage import JoinRunner, JoinRunnerState, JoinSideOutput, SideRows
from engine.records import KafkaOut, QueryResult
from runtime.metrics import CounterDeltas, publish_join_state, totals_line

log = logging.getLogger(__name__)

METRICS_EVERY_S = 1.0


@dataclass(frozen=True)
class JoinOut:
    """The streams a join produces."""

    results: Stream[QueryResult]
    """Rows for the output Stream in the order they were made (a retraction is a tombstone)."""
    dead: Stream[KafkaOut]
    """Records of either input that could not be used, each for its own input's dead-letter topic."""


class JoinLogic(StatefulLogic[SideRows, list[QueryResult], bytes]):
    def __init__(self, runner: JoinRunner, processor: str, tick_s: float):
        self.runner = runner
        self.processor = processor
        self.tick = tick_s
        self.metrics = CounterDeltas(processor)
        self.metrics.seen = dict(runner.state.counters)  # a restored join's totals were published before
        self.seen_expired = runner.expired

    def _done(self, results: list[QueryResult]) -> tuple[list[list[QueryResult]], bool]:
        self.metrics.publish(self.runner.state.counters)
        publish_join_state(self.processor, self.runner.rows_kept(), self.runner.expired, self.seen_expired)
        self.seen_expired = self.runner.expired
        return ([results] if results else []), StatefulLogic.RETAIN

    def on_item(self, value: SideRows) -> tuple[list[list[QueryResult]], bool]:
        return self._done(self.runner.on_rows(value, time.time() * 1000))

    def on_notify(self) -> tuple[list[list[QueryResult]], bool]:
        self.runner.on_tick(time.time() * 1000)
        return self._done([])

    def on_eof(self) -> tuple[list[list[QueryResult]], bool]:
        log.info("%s", totals_line(self.processor, self.runner.state.counters))
        return self._done([])

    def notify_at(self) -> datetime:
        """With a state TTL, every tick (its clock must keep running to tell
        a pause from time passing); without one, a metrics refresh."""
        wait = self.tick if self.runner.ttl_ms is not None else METRICS_EVERY_S
        return datetime.now(timezone.utc) + timedelta(seconds=wait)

    def snapshot(self) -> bytes:
        return pickle.dumps(self.runner.snapshot(), protocol=pickle.HIGHEST_PROTOCOL)


@operator
def join(
    step_id: str,
    left: Stream[JoinSideOutput],
    right: Stream[JoinSideOutput],
    make_runner: Callable[[JoinRunnerState | None], JoinRunner],
    processor: str,
    tick_s: float = 0.2,
) -> JoinOut:
    """Join the rows of two inputs' reads (`engine.join_stage.JoinSideHandler` outputs)."""
    reads = op.merge("reads", left, right)
    dead = op.flat_map("dead", reads, attrgetter("dead"))
    keyed = op.key_on("key", op.map("rows", reads, attrgetter("rows")), lambda _rows: "all")

    def build(state: bytes | None) -> JoinLogic:
        return JoinLogic(make_runner(None if state is None else pickle.loads(state)), processor, tick_s)

    made = op.key_rm("unkey", op.stateful("join", keyed, build))
    return JoinOut(op.flat_map("results", made, lambda results: results), dead)
