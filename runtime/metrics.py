"""Prometheus metrics of the pipeline.

They are registered in prometheus_client's default registry, which Bytewax
serves on its API port (`BYTEWAX_DATAFLOW_API_ENABLED=true`, port 3030) next
to its own metrics. Every series carries the processor's name.

Without that variable nothing can read them, so they are do-nothing
stand-ins: prometheus_client is not imported (a start-up cost) and updates
cost nothing.
"""

from __future__ import annotations

import time
from typing import Mapping

from engine.records import NO_WATERMARK
from runtime.settings import metrics_served

SERVED = metrics_served()
"""Whether Bytewax serves /metrics (read once, when this module loads)."""


class Unserved:
    """A Counter or Gauge that nobody can read: every update is dropped."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...] | list[str] = ()) -> None:
        self.name = name

    def labels(self, *labelvalues: str, **labelkwargs: str) -> Unserved:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass


if SERVED:
    from prometheus_client import Counter, Gauge
else:
    Counter = Gauge = Unserved  # type: ignore[assignment,misc]

RECORDS = {
    "records_in": Counter("iot_records_in", "Input records read", ["processor"]),
    "filtered": Counter("iot_records_filtered", "Records the query's WHERE clause (or a join input's filter) dropped", ["processor"]),
    "counted": Counter("iot_records_counted", "Records counted in at least one window, or taken by a join", ["processor"]),
    "late": Counter("iot_records_late", "Records whose windows had fired (sent to the late topic)", ["processor"]),
    "dead_lettered": Counter("iot_records_dead_lettered", "Records sent to the dead-letter topic", ["processor"]),
    "results_out": Counter("iot_results_out", "Result rows emitted (window results, join rows)", ["processor"]),
}
WATERMARK = Gauge("iot_watermark_ms", "Watermark of each input partition (epoch ms)", ["processor", "partition"])
WATERMARK_LAG = Gauge("iot_watermark_lag_seconds", "Processing time minus the global watermark", ["processor"])
OPEN_WINDOWS = Gauge("iot_open_windows", "Windows holding state, not fired yet", ["processor"])
JOIN_STATE_ROWS = Gauge("iot_join_state_rows", "Rows a stream-stream join keeps in its state, per input", ["processor", "side"])
JOIN_ROWS_EXPIRED = Counter("iot_join_rows_expired", "Join rows dropped when their state TTL was over", ["processor"])
UDF_CALLS = Counter("iot_udf_calls", "UDF calls by final gRPC status", ["processor", "status"])
RABBITMQ_PUBLISHED = Counter("iot_rabbitmq_published", "Messages confirmed by RabbitMQ", ["processor"])
RABBITMQ_UNROUTABLE = Counter("iot_rabbitmq_unroutable", "Confirmed messages RabbitMQ dropped: no queue bound for them", ["processor"])
RABBITMQ_REJECTED = Counter("iot_rabbitmq_rejected", "Messages AMQP could not encode, skipped by the publisher", ["processor"])
KAFKA_TRUNCATED = Counter("iot_kafka_records_truncated", "Dead-letter and late copies cut to fit Kafka's size limit", ["topic"])
KAFKA_UNWRITABLE = Counter("iot_kafka_records_unwritable", "Records Kafka refused as too large at any size (not written)", ["topic"])


class CounterDeltas:
    """Turns the engine's cumulative counters into Prometheus increments."""

    def __init__(self, processor: str):
        self.processor = processor
        self.seen: dict[str, int] = {}

    def publish(self, counters: Mapping[str, int]) -> None:
        for name, value in counters.items():
            delta = value - self.seen.get(name, 0)
            if delta > 0 and name in RECORDS:
                RECORDS[name].labels(self.processor).inc(delta)
            self.seen[name] = value


def publish_watermarks(processor: str, partitions: Mapping[str, int], global_watermark_ms: int, open_windows: int) -> None:
    for name, watermark in partitions.items():
        if watermark > NO_WATERMARK:
            WATERMARK.labels(processor, name).set(watermark)
    if global_watermark_ms > NO_WATERMARK:
        WATERMARK_LAG.labels(processor).set(time.time() - global_watermark_ms / 1000)
    OPEN_WINDOWS.labels(processor).set(open_windows)


def publish_join_state(processor: str, kept: tuple[int, int], expired: int, seen_expired: int) -> None:
    """The join's state size per input, and the rows its TTL dropped since `seen_expired`."""
    for side, rows in zip(("left", "right"), kept):
        JOIN_STATE_ROWS.labels(processor, side).set(rows)
    if expired > seen_expired:
        JOIN_ROWS_EXPIRED.labels(processor).inc(expired - seen_expired)


def totals_line(processor: str, counters: Mapping[str, int], moment: str = "end of input") -> str:
    """The accounting of a query at the end of its input (or at a stop), one line for the log."""
    return f"query {processor}: {moment}: " + ", ".join(f"{name}={value}" for name, value in counters.items())
