"""The one place that wires steps into a dataflow: plans in, `Dataflow` out.

Per query (`operators.query`):

    Kafka partitions -> query -> results  -> Kafka (the output Stream)
                              -> late     -> `<input topic>-late` (read back by offset)
                              -> dead     -> `<input topic>-dlq`

and per SRP Processor (`operators.udf`): its input Stream, read from Kafka
or, when a query of the same dataflow writes it, taken from that query's
results -> UDF over gRPC -> messages -> RabbitMQ exchange or Kafka topic,
dead -> `<input topic>-dlq`.

Building does no I/O: every connection is opened by a source or sink at run
time (the start-up preflight, `connectors.preflight`, has made the topics
and exchanges before). So a flow can be built, inspected and tested with no
broker anywhere.
"""

from __future__ import annotations

import logging
from operator import attrgetter
from typing import TYPE_CHECKING, Mapping

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream

from config.pipeline import Pipeline, QueryProcessor, StreamSpec, UdfProcessor
from config.sql.plan import Plan
from connectors.kafka_sink import KafkaOutSink
from connectors.kafka_source import KafkaBatchSource, SourceSettings
from connectors.late_sink import LateRecordSink
from engine.query_handlers import ResultEncoder, StatelessHandler, WindowedHandler
from engine.records import PartitionId, QueryResult, RawRecord, RecordBatch
from engine.serde import make_decoder
from engine.window_engine import WindowEngine
from operators.query import QueryOut, query
from runtime.lifecycle import close_at_shutdown
from runtime.settings import RunOptions

if TYPE_CHECKING:  # the UDF stage's modules (gRPC) load only when a UDF stage is wired
    from connectors.udf_client import UdfSettings
    from engine.udf_stage import UdfInput, UdfStage

log = logging.getLogger(__name__)

FLOW_ID = "iot-monitoring"


def build_flow(pipeline: Pipeline, plans: Mapping[str, Plan], options: RunOptions) -> Dataflow:
    """The queries of `plans` (by Processor name) and the UDF stages `options` selects.

    A UDF stage whose input a query of the same dataflow writes takes the
    query's results directly (they are still written to Kafka too): one hop
    less of latency, and a bounded run passes its results through the UDF.
    Run the processors as separate dataflows (`IOT_PROCESSORS=sql`,
    `IOT_PROCESSORS=udf`) to have the UDF stage read the stream back from
    Kafka, as the Streaming Runtime's processors did.
    """
    flow = Dataflow(FLOW_ID)
    produced: dict[str, Stream[QueryResult]] = {}
    for processor in pipeline.query_processors:
        plan = plans.get(processor.name)
        if plan is not None:
            produced[plan.sink] = add_query(flow, pipeline, processor, plan, options).results
    for udf in selected_udf_processors(pipeline, options):
        add_udf_processor(flow, pipeline, udf, options, produced)
    return flow


def selected_udf_processors(pipeline: Pipeline, options: RunOptions) -> list[UdfProcessor]:
    return [p for p in pipeline.udf_processors if options.runs("udf", p.name)]


def source_settings(stream: StreamSpec, options: RunOptions, processor: str, batch_size: int | None,
                    max_watermark_drift_ms: int | None = None) -> SourceSettings:
    """How a Processor reads one of its input Streams."""
    return SourceSettings(
        startup_mode=stream.startup_mode,
        startup_timestamp_ms=stream.startup_timestamp_ms,
        bounded=options.bounded,
        batch_size=batch_size or options.batch_size,
        connect_timeout_s=options.connect_timeout_s,
        native=options.native_kafka,
        group_id=stream.kafka_properties.get("group.id") or processor,
        max_watermark_drift_ms=max_watermark_drift_ms,
    )


def add_query(flow: Dataflow, pipeline: Pipeline, processor: QueryProcessor, plan: Plan, options: RunOptions) -> QueryOut:
    """Kafka in -> the plan -> Kafka out (results, late records, dead letters)."""
    source = pipeline.stream(plan.source)
    sink = pipeline.stream(plan.sink)
    decoder_columns = tuple(c for c in plan.columns_needed if (f := source.field_named(c)) is None or f.in_record)
    settings = pipeline.settings
    encoder = ResultEncoder(plan, sink)
    dlq = pipeline.dlq_topic(source)
    name = processor.name

    if plan.window is None:
        def make_stateless(pid: PartitionId, partitions: tuple[PartitionId, ...], state: object) -> StatelessHandler:
            return StatelessHandler(plan, source, make_decoder(source, decoder_columns), encoder, dlq, pid)

        reader = KafkaBatchSource(source.servers, source.topic, make_stateless,
                                  source_settings(source, options, name, processor.batch_size), source.kafka_properties)
        out = query(name, flow, reader, encoder, None, name)
    else:
        assert source.time_attribute is not None
        delay = source.time_attribute.watermark_delay_ms

        def make_windowed(pid: PartitionId, partitions: tuple[PartitionId, ...], state: object) -> WindowedHandler:
            return WindowedHandler(plan, source, settings, make_decoder(source, decoder_columns), pid, partitions, dlq, state)

        reader = KafkaBatchSource(
            source.servers, source.topic, make_windowed,
            source_settings(source, options, name, processor.batch_size, settings.max_watermark_drift_ms),
            source.kafka_properties,
        )
        out = query(name, flow, reader, encoder, lambda state: WindowEngine(plan, settings, delay, state), name)
        op.output(f"{name}_write-late", out.late,
                  LateRecordSink(source.servers, pipeline.late_topic(source), source.kafka_properties))
    op.output(f"{name}_write-dead-letters", out.dead, KafkaOutSink(source.servers, source.kafka_properties))
    op.output(f"{name}_write", op.map(f"{name}_records", out.results, attrgetter("out")),
              KafkaOutSink(sink.servers, sink.kafka_properties))
    return out


class RecordsAsRead:
    """Per-partition handler of a UDF stage's Kafka input: every record, unchanged."""

    def handle(self, batch: RecordBatch, end_of_input: bool, caught_up: bool) -> list[RawRecord]:
        return batch.records()

    def snapshot(self) -> None:
        return None


def udf_settings(processor: UdfProcessor, options: RunOptions) -> UdfSettings | None:
    """Where and how to call the UDF: the run's address override, else the
    Processor's sidecar; the Processor's `srp.udf.*` tuning."""
    if processor.udf is None:
        return None
    from connectors.udf_client import UdfSettings

    t = processor.tuning
    return UdfSettings(
        address=options.udf_address or processor.udf.address,
        max_in_flight=t.max_in_flight,
        deadline_s=t.deadline_ms / 1000,
        busy_retries=t.busy_retries,
        ordered_by_key=t.ordered_by_key,
        name=processor.name,
        tls=processor.udf.tls,
    )


def add_udf_processor(flow: Dataflow, pipeline: Pipeline, processor: UdfProcessor, options: RunOptions,
                      upstream: Mapping[str, Stream[QueryResult]]) -> None:
    """An SRP Processor's steps: per input, per output, the UDF stage and its sinks."""
    from operators.udf import udf_processor
    settings = udf_settings(processor, options)
    if settings is None:
        log.info("%s: no UDF container; records are forwarded unchanged", processor.name)
    else:
        log.info("%s: calling the UDF at %s (%s)", processor.name, settings.address,
                 "TLS, " + settings.tls.describe() if settings.tls else "plaintext")
    outputs = [pipeline.stream(name) for name in processor.outputs]
    for input_name in processor.inputs:
        source = pipeline.stream(input_name)
        step = f"{processor.name}_{source.name}"
        records: Stream[UdfInput]
        if input_name in upstream:
            records = upstream[input_name]  # type: ignore[assignment]
        else:
            reader = KafkaBatchSource(source.servers, source.topic, lambda pid, parts, state: RecordsAsRead(),
                                      source_settings(source, options, processor.name, processor.batch_size),
                                      source.kafka_properties)
            records = op.input(f"{step}_read", flow, reader)
        dead_letter_sink = KafkaOutSink(source.servers, source.kafka_properties)
        for output in outputs:
            out_step = step if len(outputs) == 1 else f"{step}_{output.name}"
            stage = udf_stage(processor, source, output, pipeline.dlq_topic(source), settings)
            out = udf_processor(out_step, records, stage)
            op.output(f"{out_step}_write-dead-letters", out.dead, dead_letter_sink)
            op.output(f"{out_step}_write", out.messages, output_sink(output, processor.name))


def udf_stage(processor: UdfProcessor, source: StreamSpec, output: StreamSpec, dlq_topic: str,
              settings: UdfSettings | None) -> UdfStage:
    from connectors.udf_client import UdfClient
    from engine.udf_stage import UdfStage
    from udf.headers import HeaderBuilder

    delay = source.time_attribute.watermark_delay_ms if source.time_attribute else 0
    client = close_at_shutdown(UdfClient(settings)) if settings else None
    return UdfStage(
        client=client,  # type: ignore[arg-type]
        output_protocol=output.protocol,
        output_topic=output.topic,
        dlq_topic=dlq_topic,
        key_fields=output.key_fields or output.keys or source.key_fields or source.keys,
        header_builder=HeaderBuilder(watermark_delay_ms=delay),
        processor=processor.name,
    )


def output_sink(output: StreamSpec, processor: str):
    """The sink of an SRP output Stream: a RabbitMQ exchange or a Kafka topic."""
    if output.protocol == "rabbitmq":
        from connectors.rabbitmq import RabbitMQSink  # pika loads only when an output is RabbitMQ

        return RabbitMQSink(output.servers, output.topic, processor=processor, tls=output.tls)
    return KafkaOutSink(output.servers, output.kafka_properties)
