"""A stream-stream join as two halves, like a windowed query's:

- `JoinSideHandler`, beside each input partition's reader: decodes a whole
  read, adds the Kafka metadata columns the join reads (the Kafka-timestamp
  event time of a play, say), dead-letters what cannot be used, applies the
  input's own filter and keeps the join's columns of each row, plus where
  the row came from;
- `JoinRunner`, in one stateful step: the `StreamJoin` state machine fed
  with both inputs' rows in the order they reach it, the rows it makes
  encoded for the output Stream (a retraction as a tombstone), the state
  TTL on a processing-time clock that stands still while the step does not
  run, and the counters of the accounting identity
  (`records_in = filtered + counted + dead_lettered` per join, where counted
  rows are the ones handed to the join).

Pure: no Bytewax, no I/O (`operators.join` is the step around it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import polars as pl

from config.pipeline import StreamSpec
from config.sql.plan import JoinInput, Plan
from engine.dead_letters import dead_letter
from engine.join import DELETE, LEFT, RIGHT, JoinState, StreamJoin, output_dicts
from engine.metadata import MetadataColumns
from engine.partition_stage import offsets_of
from engine.query_handlers import ResultEncoder
from engine.records import KafkaOut, PartitionId, QueryResult, RecordBatch, RetryLater
from engine.serde import SchemaRegistryUnavailable

STALL_FLOOR_MS = 1_000.0
"""A gap between two steps longer than this is time the step did not run
(a restart, a blocked worker): it is taken out of the TTL's clock."""
ORIGIN_PARTITION_SHIFT = 40
"""A row's origin is one int: (partition + 1) << 40 | offset."""


def origin_of(partition: int, offsets: pl.Series) -> pl.Series:
    """Rows' origins: partition and offset in one int (a handed-over input's partition is -1)."""
    return (offsets + ((partition + 1) << ORIGIN_PARTITION_SHIFT)).alias("__origin")


def origin_parts(origin: int | None) -> tuple[int, int] | None:
    """(partition, offset) of an origin."""
    if origin is None:
        return None
    return (origin >> ORIGIN_PARTITION_SHIFT) - 1, origin & ((1 << ORIGIN_PARTITION_SHIFT) - 1)


@dataclass(frozen=True)
class SideRows:
    """One read of one input of a join: its rows as the join keeps them
    (`JoinInput.columns`, then the origin) and its bookkeeping."""

    side: int  # LEFT or RIGHT
    rows: list[tuple]
    records_in: int
    filtered: int
    dead_lettered: int


@dataclass(frozen=True)
class JoinSideOutput:
    """What one read of a join input gives: rows for the join step, dead letters."""

    rows: SideRows
    dead: list[KafkaOut]


class JoinSideHandler:
    """One partition of one join input: one `JoinSideOutput` per read that had records."""

    def __init__(self, side: int, spec: JoinInput, stream: StreamSpec, decoder: Any, dlq_topic: str,
                 source: PartitionId, clock: Callable[[], float] = time.time):
        self.side = side
        self.spec = spec
        self.decoder = decoder
        self.dlq_topic = dlq_topic
        self.source = source
        self.metadata = MetadataColumns.of(stream, spec.columns_needed, clock)
        self.predicate = spec.predicate.polars().fill_null(False) if spec.predicate else None
        self.kept = [*spec.columns, "__origin"]

    def handle(self, batch: RecordBatch, end_of_input: bool, caught_up: bool) -> list[JoinSideOutput]:
        if not len(batch):
            return []
        try:
            decoded = self.decoder.decode(batch.values)
        except SchemaRegistryUnavailable as exc:
            raise RetryLater(str(exc)) from None
        errors = list(decoded.errors)
        frame, unreadable = self.metadata.add(decoded.frame, batch, decoded.index, self.source)
        frame = frame.with_columns(
            pl.Series("__pos", decoded.index, dtype=pl.Int64),
            origin_of(self.source.partition, offsets_of(batch, decoded.index)),
        )
        if unreadable:
            errors = sorted(errors + unreadable)
            frame = frame.filter(~pl.col("__pos").is_in([pos for pos, _ in unreadable]))
        read = frame.height
        if self.predicate is not None and read:
            frame = frame.filter(self.predicate)
        dead = [dead_letter(batch.record(i), reason, self.dlq_topic) for i, reason in errors]
        rows = frame.select(self.kept).rows() if frame.height else []
        return [JoinSideOutput(SideRows(self.side, rows, len(batch), read - frame.height, len(dead)), dead)]

    def snapshot(self) -> None:
        return None


@dataclass
class JoinRunnerState:
    """What a join step keeps across restarts (pickled into the recovery store)."""

    join: JoinState = field(default_factory=JoinState)
    last_call_ms: float | None = None
    paused_ms: float = 0.0  # processing time during which the step did not run: not counted by the TTL
    counters: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("records_in", "filtered", "counted", "dead_lettered", "results_out"), 0)
    )


class JoinRunner:
    """The join of one plan, fed with `SideRows`, giving encoded results."""

    def __init__(self, plan: Plan, encoder: ResultEncoder, state: JoinRunnerState | None = None):
        assert plan.join is not None
        self.plan = plan
        self.encoder = encoder
        self.state = state or JoinRunnerState()
        self.join = StreamJoin(plan.join, plan.projection, self.state.join, origins=True)

    @property
    def ttl_ms(self) -> int | None:
        return self.join.ttl_ms

    def rows_kept(self) -> tuple[int, int]:
        """Rows in state per input (left, right): the state-size metric."""
        kept = self.state.join.kept
        return kept[LEFT], kept[RIGHT]

    def _clock(self, now_ms: float) -> float:
        """Processing time that stands still while the step does not run."""
        st = self.state
        if st.last_call_ms is not None and now_ms - st.last_call_ms > STALL_FLOOR_MS:
            st.paused_ms += now_ms - st.last_call_ms
        st.last_call_ms = now_ms
        return now_ms - st.paused_ms

    def on_rows(self, batch: SideRows, now_ms: float) -> list[QueryResult]:
        counters = self.state.counters
        counters["records_in"] += batch.records_in
        counters["filtered"] += batch.filtered
        counters["dead_lettered"] += batch.dead_lettered
        counters["counted"] += len(batch.rows)
        now = self._clock(now_ms)
        made = self.join.on_left(batch.rows, now) if batch.side == LEFT else self.join.on_right(batch.rows, now)
        if not made.rows:
            return []
        origins = made.origins or [(None, None)] * len(made.rows)
        results = []
        for (kind, row), (left, right) in zip(output_dicts(made, self.plan.projection), origins):
            out = self.encoder.encode_delete(row) if kind == DELETE else self.encoder.encode_row(row)  # type: ignore[arg-type]
            results.append(QueryResult(out, None, ("join", kind, origin_parts(left), origin_parts(right))))
        counters["results_out"] += len(results)
        return results

    def on_tick(self, now_ms: float) -> int:
        """Processing time passed: rows whose TTL is over are dropped; returns how many."""
        return self.join.on_tick(self._clock(now_ms))

    @property
    def expired(self) -> int:
        return self.state.join.counters["expired"]

    def snapshot(self) -> JoinRunnerState:
        return self.state

