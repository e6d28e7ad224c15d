"""The IoT monitoring dataflow: `python -m bytewax.run dataflows.iot`.

This module is the one place that wires steps together. It reads the
pipeline YAML (`IOT_PIPELINE`, default `config/iot-monitoring.yaml`),
compiles each Processor's SQL into a plan, and builds, per query:

    Kafka partitions -> partition stage (decode, dead-letter, filter,
    watermark, group) -> window engine (global watermark, fire, late)
    -> JSON results, late records and dead letters -> Kafka

and, per SRP Processor, the UDF stage (Kafka -> gRPC UDF -> RabbitMQ).

Environment (read here only; everything below gets plain values):
`IOT_PIPELINE`, `IOT_BOUNDED=1` (read to the current end, fire every window,
exit), `IOT_PROCESSORS` (`all`, `sql`, `udf`, or processor names, comma
separated), `IOT_UDF_ADDRESS` (host:port of the UDF instead of the
Processor's sidecar address), `IOT_CONNECT_TIMEOUT` (seconds to wait for a
broker at start), `IOT_BATCH_SIZE` (records per read at most, default 20000; a live stream reads what has arrived).
"""

from __future__ import annotations

import gc

# No cyclic collections while start-up imports and builds: they would only
# walk objects that live as long as the process. settle_startup_heap() turns
# the collector back on (and _settled_flow() does when the build fails).
gc.disable()

import logging
import os
import sys
from dataclasses import dataclass
from typing import Mapping

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream

from config import ConfigError, load_pipeline
from config.pipeline import Pipeline, QueryProcessor, StreamSpec
from config.sql import SqlError, compile_query
from config.sql.plan import Plan
from runtime.heap import settle_startup_heap
from connectors.kafka_admin import BrokerUnavailable, ensure_topics, wait_for_kafka
from connectors.kafka_sink import KafkaOutSink
from connectors.kafka_source import KafkaBatchSource, StartupMode
from runtime.logs import configure_logging
from connectors.rabbitmq_errors import RabbitMQConfigError
from connectors.late_fetch import LateRecordFetcher
from engine.query_handlers import ResultEncoder, StatelessHandler, WindowedHandler
from engine.records import KafkaOut, RawRecord, WindowResult
from engine.serde import make_decoder
from engine.window_engine import WindowEngine
from operators.windows import window_aggregate

log = logging.getLogger("dataflows.iot")


@dataclass(frozen=True)
class RunOptions:
    """How to run the pipeline, beside what the YAML says."""

    bounded: bool = False
    processors: tuple[str, ...] = ("all",)
    udf_address: str | None = None
    connect_timeout_s: float = 30.0
    batch_size: int = 20000

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "RunOptions":
        return cls(
            bounded=env.get("IOT_BOUNDED", "") in ("1", "true", "yes"),
            processors=tuple(p.strip() for p in env.get("IOT_PROCESSORS", "all").split(",") if p.strip()),
            udf_address=env.get("IOT_UDF_ADDRESS") or None,
            connect_timeout_s=float(env.get("IOT_CONNECT_TIMEOUT", 30)),
            batch_size=int(env.get("IOT_BATCH_SIZE", 20000)),
        )

    def runs(self, kind: str, name: str) -> bool:
        return "all" in self.processors or kind in self.processors or name in self.processors


def prepare_topics(pipeline: Pipeline, plan: Plan, timeout_s: float) -> None:
    """Create the query's topics that are missing."""
    source, sink = pipeline.stream(plan.source), pipeline.stream(plan.sink)
    admin = wait_for_kafka(source.servers, timeout_s, source.kafka_properties)
    wanted = {source.topic: source.partition_count or 1, pipeline.late_topic(source): 1, pipeline.dlq_topic(source): 1}
    ensure_topics(admin, wanted)
    if sink.protocol == "kafka":
        sink_admin = admin if sink.servers == source.servers else wait_for_kafka(sink.servers, timeout_s, sink.kafka_properties)
        ensure_topics(sink_admin, {sink.topic: sink.partition_count or 1})


def reader(source: StreamSpec, make_handler, options: RunOptions, max_watermark_drift_ms: int | None = None) -> KafkaBatchSource:
    """The partitioned Kafka reader of an input Stream, as the Stream and the run options say."""
    return KafkaBatchSource(
        source.servers, source.topic, make_handler,
        startup=StartupMode(source.startup_mode, source.startup_timestamp_ms),
        bounded=options.bounded, consumer_config=source.kafka_properties,
        batch_size=options.batch_size, connect_timeout_s=options.connect_timeout_s,
        max_watermark_drift_ms=max_watermark_drift_ms,
    )


def add_query(flow: Dataflow, pipeline: Pipeline, processor: QueryProcessor, plan: Plan, options: RunOptions) -> Stream[KafkaOut]:
    """Kafka in -> the plan -> Kafka out (results, late records, dead letters).
    Returns the stream of results, so a UDF stage of the same dataflow can
    take them without reading them back from Kafka."""
    source = pipeline.stream(plan.source)
    sink = pipeline.stream(plan.sink)
    prepare_topics(pipeline, plan, options.connect_timeout_s)
    decoder_columns = tuple(c for c in plan.columns_needed if (f := source.field_named(c)) is None or f.in_record)
    settings = pipeline.settings
    encoder = ResultEncoder(plan, sink)
    dlq = pipeline.dlq_topic(source)
    name = processor.name

    if plan.window is None:
        def make_stateless(topic: str, partition: int, partitions: tuple[str, ...], state: object) -> StatelessHandler:
            return StatelessHandler(plan, source, make_decoder(source, decoder_columns), encoder, dlq)

        records = op.input(f"{name}_read", flow, reader(source, make_stateless, options))  # one item per output record
        split = op.branch(f"{name}_results-or-dead", records, lambda out: out.topic == sink.topic)
        op.output(f"{name}_write-dead-letters", split.falses, KafkaOutSink(source.servers, source.kafka_properties))
        op.output(f"{name}_write", split.trues, KafkaOutSink(sink.servers, sink.kafka_properties))
        return split.trues

    assert source.time_attribute is not None
    delay = source.time_attribute.watermark_delay_ms

    def make_windowed(topic: str, partition: int, partitions: tuple[str, ...], state: object) -> WindowedHandler:
        return WindowedHandler(
            plan, source, settings, make_decoder(source, decoder_columns),
            f"{topic}/{partition}", partitions, dlq, state,
        )

    read = op.input(f"{name}_read", flow, reader(source, make_windowed, options, settings.max_watermark_drift_ms))
    dead_letters = op.flat_map(f"{name}_dead-letters", read, lambda item: item[1])
    batches = op.map(f"{name}_batches", read, lambda item: item[0])
    engine_out = window_aggregate(
        f"{name}_windows", batches,
        lambda state: WindowEngine(plan, settings, delay, state), name,
    )
    late_out = pipeline.late_topic(source)
    split = op.branch(f"{name}_results-or-late", engine_out, lambda out: isinstance(out, WindowResult))
    results = op.map(f"{name}_encode", split.trues, encoder.encode)
    fetcher = LateRecordFetcher(source.servers, late_out, source.kafka_properties)
    late = op.flat_map_batch(f"{name}_late", split.falses, fetcher.fetch)
    source_sink = KafkaOutSink(source.servers, source.kafka_properties)
    op.output(f"{name}_write-dead-letters", dead_letters, source_sink)
    op.output(f"{name}_write-late", late, source_sink)
    op.output(f"{name}_write", results, KafkaOutSink(sink.servers, sink.kafka_properties))
    return results


def as_read(out: KafkaOut) -> RawRecord:
    """A result as the UDF stage would have read it back from Kafka (no offset yet)."""
    return RawRecord(out.topic, None, None, out.key, out.value, out.headers, None)  # type: ignore[arg-type]


def build_flow(pipeline: Pipeline, options: RunOptions) -> Dataflow:
    """The whole pipeline, or the processors `options` selects.

    When a UDF processor reads a stream that a query of the same dataflow
    writes, it takes the query's results directly (they are still written to
    Kafka too): one hop less of latency, and a bounded run passes its
    results through the UDF. Run the processors as separate dataflows
    (`IOT_PROCESSORS=sql`, `IOT_PROCESSORS=udf`) to have the UDF stage read
    the stream back from Kafka, as the Streaming Runtime's processors did.
    """
    flow = Dataflow("iot-monitoring")
    produced: dict[str, Stream[RawRecord]] = {}
    for processor in pipeline.query_processors:
        if options.runs("sql", processor.name):
            plan = compile_query(processor, pipeline)
            results = add_query(flow, pipeline, processor, plan, options)
            produced[plan.sink] = op.map(f"{processor.name}_handover", results, as_read)
    for udf_processor in pipeline.udf_processors:
        if options.runs("udf", udf_processor.name):
            from dataflows.udf_stage import add_udf_processor  # gRPC and pika load only when a UDF stage runs

            add_udf_processor(flow, pipeline, udf_processor, bounded=options.bounded, udf_address=options.udf_address,
                              connect_timeout_s=options.connect_timeout_s, upstream=produced)
    return flow


def flow_from_env(env: Mapping[str, str] | None = None) -> Dataflow:
    """Build the dataflow the environment describes; user errors exit with a
    clear message instead of a traceback."""
    env = os.environ if env is None else env
    configure_logging()
    path = env.get("IOT_PIPELINE") or None
    try:
        pipeline = load_pipeline(path, env) if path else load_pipeline(env=env)
        return build_flow(pipeline, RunOptions.from_env(env))
    except (ConfigError, SqlError, BrokerUnavailable, RabbitMQConfigError) as exc:
        print(f"iot-monitoring: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _settled_flow() -> Dataflow:
    """The dataflow, then the start-up heap settled. A failed build re-enables
    the collector: a process that imported this module goes on (a test)."""
    try:
        built = flow_from_env()
    except BaseException:
        gc.enable()
        raise
    settle_startup_heap()
    return built


flow = _settled_flow()
