"""`query`: one streaming-SQL query as one composite Bytewax step.

    Kafka partitions -> per-partition handler (decode, dead-letter, filter,
    watermark, group; or the whole stateless query) -> window engine
    (global watermark, fire, late) -> QueryOut(results, late, dead)

Like Bytewax's own `KafkaOpOut(oks, errs)` and `WindowOut(down, late, meta)`,
the outputs are named streams: the wiring attaches sinks to them, and
nothing downstream tells them apart by topic or type.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Callable

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream, operator

from connectors.kafka_source import BatchHandler, KafkaBatchSource
from engine.query_handlers import ResultEncoder
from engine.records import Fired, KafkaOut, LateRecord, PartitionId, QueryResult, RowsOutput, WindowedOutput
from engine.window_engine import EngineState, WindowEngine
from operators.handover import handed_over
from operators.windows import window_aggregate


@dataclass(frozen=True)
class QueryOut:
    """The streams a query produces."""

    results: Stream[QueryResult]
    """Rows for the output Stream, in firing order per window (each knows its window and identity)."""
    late: Stream[LateRecord]
    """Records whose windows had all fired when they were read, by Kafka coordinates."""
    dead: Stream[KafkaOut]
    """Records that could not be used, for the input's dead-letter topic."""


@operator
def query(
    step_id: str,
    flow: Dataflow,
    source: KafkaBatchSource,
    encoder: ResultEncoder,
    make_engine: Callable[[EngineState | None], WindowEngine] | None,
    processor: str,
) -> QueryOut:
    """A windowed query when `make_engine` is given (its source's handlers
    emit `WindowedOutput`), else the stateless form (`RowsOutput`)."""
    return _query_steps(op.input("read", flow, source), encoder, make_engine, processor)


@operator
def handed_over_query(
    step_id: str,
    up: Stream[QueryResult],
    make_handler: Callable[[PartitionId, tuple[PartitionId, ...], Any], BatchHandler],
    topic: str,
    encoder: ResultEncoder,
    make_engine: Callable[[EngineState | None], WindowEngine] | None,
    processor: str,
) -> QueryOut:
    """The same query over a Stream another query of the dataflow writes,
    handed over in-process (`operators.handover`) instead of read from Kafka."""
    return _query_steps(handed_over("read", up, make_handler, topic), encoder, make_engine, processor)


def _query_steps(
    reads: Stream[Any],
    encoder: ResultEncoder,
    make_engine: Callable[[EngineState | None], WindowEngine] | None,
    processor: str,
) -> QueryOut:
    if make_engine is None:
        rows: Stream[RowsOutput] = reads
        results = op.flat_map("results", rows, attrgetter("results"))
        dead = op.flat_map("dead", rows, attrgetter("dead"))
        late: Stream[LateRecord] = op.flat_map("late", rows, lambda _rows: ())
        return QueryOut(results, late, dead)
    windowed: Stream[WindowedOutput] = reads
    dead = op.flat_map("dead", windowed, attrgetter("dead"))
    batches = op.map("batches", windowed, attrgetter("batch"))
    fired: Stream[Fired] = window_aggregate("windows", batches, make_engine, processor)
    results = op.flat_map("results", fired, lambda f: [encoder.encode(r) for r in f.results])
    late = op.flat_map("late", fired, attrgetter("late"))
    return QueryOut(results, late, dead)
