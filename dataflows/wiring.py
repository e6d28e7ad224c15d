"""The one place that wires steps into a dataflow: plans in, `Dataflow` out.

Per query (`operators.query`):

    Kafka partitions -> query -> results  -> Kafka (the output Stream)
                              -> late     -> `<input topic>-late` (read back by offset)
                              -> dead     -> `<input topic>-dlq`

per join (`operators.join`): both inputs' partitions -> join -> results ->
Kafka (append-only rows, or an upsert-kafka changelog with tombstones),
dead -> each input's `-dlq`;

and per SRP Processor (`operators.udf`): its input Stream, read from Kafka
or, when a query of the same dataflow writes it, taken from that query's
results -> UDF over gRPC -> messages -> RabbitMQ exchange or Kafka topic,
dead -> `<input topic>-dlq`.

Chains: a query whose input Stream another query of the dataflow writes
takes that query's results handed over in-process (`operators.handover`,
`config.chains`), decoded and watermarked as its own Stream says; the
queries are wired writers first.

Building does no I/O: every connection is opened by a source or sink at run
time (the start-up preflight, `connectors.preflight`, has made the topics
and exchanges before). So a flow can be built, inspected and tested with no
broker anywhere.
"""

from __future__ import annotations

import logging
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Callable, Mapping

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow, Stream

from config.chains import chain_order
from config.pipeline import Pipeline, QueryProcessor, StreamSpec, UdfProcessor
from config.sql.debug import debug_output
from config.sql.plan import JoinSpec, Plan
from connectors.kafka_sink import KafkaOutSink
from connectors.kafka_source import BatchHandler, KafkaBatchSource, SourceSettings
from connectors.late_sink import LateRecordSink
from engine.join import SIDE_NAMES
from engine.join_stage import JoinRunner, JoinSideHandler
from engine.query_handlers import ResultEncoder, StatelessHandler, WindowedHandler
from engine.records import PartitionId, QueryResult, RawRecord, RecordBatch
from engine.serde import make_decoder
from engine.window_engine import WindowEngine
from engine.table_first import TableFirst
from operators.handover import handed_over, late_of_handed_over
from operators.join import JoinOut, join
from operators.query import QueryOut, handed_over_query, query
from runtime.lifecycle import close_at_shutdown
from runtime.settings import RunOptions

if TYPE_CHECKING:  # the UDF stage's modules (gRPC) load only when a UDF stage is wired
    from connectors.udf_client import UdfSettings
    from engine.udf_stage import UdfInput, UdfStage

log = logging.getLogger(__name__)

FLOW_ID = "iot-monitoring"


def build_flow(pipeline: Pipeline, plans: Mapping[str, Plan], options: RunOptions) -> Dataflow:
    """The queries of `plans` (by Processor name) and the UDF stages `options` selects.

    A query or UDF stage whose input a query of the same dataflow writes
    takes that query's results directly (they are still written to Kafka
    too): one hop less of latency, a bounded run passes everything through
    the whole chain, and a restart resumes writer and reader at the same
    snapshot. Run the processors as separate dataflows (`IOT_PROCESSORS=<name>`)
    to have them read the stream back from Kafka, as the Streaming Runtime's
    processors did.
    """
    flow = Dataflow(FLOW_ID)
    processors = {p.name: p for p in pipeline.query_processors}
    written = WrittenStreams()
    for name in chain_order(pipeline, plans):
        plan = plans[name]
        written.add(plan.sink, add_query(flow, pipeline, processors[name], plan, options, written))
    for udf in selected_udf_processors(pipeline, options):
        add_udf_processor(flow, pipeline, udf, options, written)
    return flow


class WrittenStreams(Mapping[str, Stream[QueryResult]]):
    """The results the queries wired so far write, by Stream name. Several
    queries may write one Stream: their results are merged into one stream
    when a reader first takes it, once (the chain order wires every writer
    of a Stream before its readers)."""

    def __init__(self) -> None:
        self._writers: dict[str, list[Stream[QueryResult]]] = {}
        self._taken: dict[str, Stream[QueryResult]] = {}

    def add(self, name: str, results: Stream[QueryResult]) -> None:
        assert name not in self._taken, f"a writer of {name} was wired after one of its readers"
        self._writers.setdefault(name, []).append(results)

    def __getitem__(self, name: str) -> Stream[QueryResult]:
        if name not in self._taken:
            streams = self._writers[name]
            self._taken[name] = streams[0] if len(streams) == 1 else op.merge(f"{name}_written", *streams)
        return self._taken[name]

    def __contains__(self, name: object) -> bool:
        return name in self._writers

    def __iter__(self):
        return iter(self._writers)

    def __len__(self) -> int:
        return len(self._writers)


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


def record_columns(plan: Plan, stream: StreamSpec) -> tuple[str, ...]:
    """The columns of `stream` the plan reads from the record value (the
    decoder's); metadata and processing-time columns are added beside it."""
    return tuple(c for c in plan.columns_read(stream.name) if (f := stream.field_named(c)) is None or f.in_record)


HandlerFactory = Callable[[PartitionId, tuple[PartitionId, ...], Any], BatchHandler]


def add_query(flow: Dataflow, pipeline: Pipeline, processor: QueryProcessor, plan: Plan, options: RunOptions,
              upstream: Mapping[str, Stream[QueryResult]] | None = None) -> Stream[QueryResult]:
    """Kafka (or a query of this dataflow) in -> the plan -> Kafka out (results,
    late records, dead letters); returns the results, for readers in this dataflow."""
    upstream = upstream or {}
    debug = debug_output(processor, plan, pipeline)
    debug.log_start(log)
    if plan.join is not None:
        results = add_join(flow, pipeline, processor, plan, options, upstream).results
    else:
        results = _add_single_input(flow, pipeline, processor, plan, options, upstream.get(plan.source)).results
    sink = pipeline.stream(plan.sink)
    name = processor.name
    if debug.rows is not None and log.isEnabledFor(logging.DEBUG):
        op.inspect(f"{name}_debug-rows", results, lambda _step, r: debug.log_rows(log, _logged_rows(r)))
    op.output(f"{name}_write", op.map(f"{name}_records", results, attrgetter("out")),
              KafkaOutSink(sink.servers, sink.kafka_properties))
    return results


def _logged_rows(result: QueryResult) -> list[dict[str, Any]]:
    """A result as the output Stream holds it, for `debugQuery` (a tombstone shows nothing)."""
    return [] if result.out.value is None else [orjson.loads(result.out.value)]


def _add_single_input(flow: Dataflow, pipeline: Pipeline, processor: QueryProcessor, plan: Plan, options: RunOptions,
                      handed: Stream[QueryResult] | None) -> QueryOut:
    source = pipeline.stream(plan.source)
    sink = pipeline.stream(plan.sink)
    columns = record_columns(plan, source)
    settings = pipeline.settings
    encoder = ResultEncoder(plan, sink)
    dlq = pipeline.dlq_topic(source)
    name = processor.name

    make_engine = None
    make_handler: HandlerFactory
    drift = None
    if plan.window is None:
        def make_handler(pid: PartitionId, partitions: tuple[PartitionId, ...], state: object) -> StatelessHandler:
            return StatelessHandler(plan, source, make_decoder(source, columns), encoder, dlq, pid)
    else:
        assert source.time_attribute is not None
        delay = source.time_attribute.watermark_delay_ms
        drift = settings.max_watermark_drift_ms

        def make_handler(pid: PartitionId, partitions: tuple[PartitionId, ...], state: object) -> WindowedHandler:
            return WindowedHandler(plan, source, settings, make_decoder(source, columns), pid, partitions, dlq, state)

        def make_engine(state):
            return WindowEngine(plan, settings, delay, state)

    if handed is None:
        reader = KafkaBatchSource(source.servers, source.topic, make_handler,
                                  source_settings(source, options, name, processor.batch_size, drift),
                                  source.kafka_properties)
        out = query(name, flow, reader, encoder, make_engine, name)
        if plan.window is not None:
            op.output(f"{name}_write-late", out.late,
                      LateRecordSink(source.servers, pipeline.late_topic(source), source.kafka_properties))
    else:
        log.info("%s reads %s as handed over by the query that writes it in this dataflow", name, source.name)
        out = handed_over_query(name, handed, make_handler, source.topic, encoder, make_engine, name)
        if plan.window is not None:
            late_topic = pipeline.late_topic(source)
            late = op.map(f"{name}_late-records", out.late, lambda record: late_of_handed_over(record, late_topic))
            op.output(f"{name}_write-late", late, KafkaOutSink(source.servers, source.kafka_properties))
    op.output(f"{name}_write-dead-letters", out.dead, KafkaOutSink(source.servers, source.kafka_properties))
    return out


def add_join(flow: Dataflow, pipeline: Pipeline, processor: QueryProcessor, plan: Plan, options: RunOptions,
             upstream: Mapping[str, Stream[QueryResult]]) -> JoinOut:
    """Both inputs, each read as its own Stream says -> the join -> results and dead letters."""
    spec = plan.join
    assert spec is not None
    name = processor.name
    encoder = ResultEncoder(plan, pipeline.stream(plan.sink))
    reads = []
    dead_sinks: dict[tuple, tuple[StreamSpec, list[str]]] = {}
    table = table_side(pipeline, spec, upstream)
    sides = (spec.left.stream, spec.right.stream)
    gate = None if table is None else TableFirst(table=sides[table], events=sides[1 - table])
    for index, side in enumerate((spec.left, spec.right)):
        stream = pipeline.stream(side.stream)
        columns = record_columns(plan, stream)
        dlq = pipeline.dlq_topic(stream)

        def make_handler(pid: PartitionId, partitions: tuple[PartitionId, ...], state: object, index: int = index,
                         side=side, stream: StreamSpec = stream, columns=columns, dlq: str = dlq) -> JoinSideHandler:
            return JoinSideHandler(index, side, stream, make_decoder(stream, columns), dlq, pid)

        step = f"{name}_{SIDE_NAMES[index]}"
        handed = upstream.get(stream.name)
        if handed is None:
            reader = KafkaBatchSource(stream.servers, stream.topic, make_handler,
                                      source_settings(stream, options, name, processor.batch_size), stream.kafka_properties,
                                      loads_first=gate if index == table else None,
                                      waits_for=gate if gate is not None and index != table else None)
            reads.append(op.input(f"{step}_read", flow, reader))
        else:
            log.info("%s reads %s as handed over by the query that writes it in this dataflow", name, stream.name)
            reads.append(handed_over(f"{step}_read", handed, make_handler, stream.topic))
        cluster = (stream.servers, tuple(sorted(stream.kafka_properties.items())))
        dead_sinks.setdefault(cluster, (stream, []))[1].append(dlq)
    out = join(name, reads[0], reads[1], lambda state: JoinRunner(plan, encoder, state), name)
    for i, (stream, topics) in enumerate(dead_sinks.values()):
        dead = out.dead if len(dead_sinks) == 1 else op.filter(
            f"{name}_dead-letters-{i}", out.dead, lambda letter, topics=tuple(topics): letter.topic in topics)
        op.output(f"{name}_write-dead-letters" + (f"-{i}" if i else ""), dead,
                  KafkaOutSink(stream.servers, stream.kafka_properties))
    return out


def table_side(pipeline: Pipeline, spec: JoinSpec, upstream: Mapping[str, Stream[QueryResult]]) -> int | None:
    """The input of a join that is a table (no event time) beside events (an event time), both read from
    Kafka: it is read first (`engine.table_first`). None when the inputs are not one of each."""
    streams = [pipeline.stream(side.stream) for side in (spec.left, spec.right)]
    if any(stream.name in upstream for stream in streams):
        return None
    timed = [stream.time_attribute is not None for stream in streams]
    return timed.index(False) if timed.count(False) == 1 else None


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
