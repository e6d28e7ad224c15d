"""Wiring of an SRP Processor: Kafka input -> UDF over gRPC -> RabbitMQ (or Kafka) output.

Per input Stream:

    Kafka partitions (records as read) -> UdfStage (requestReply, bounded in
    flight) -> output messages -> RabbitMQ exchange / Kafka topic
                                 -> dead letters -> `<input topic>-dlq`

The UDF is the Processor's sidecar (`localhost:<srp.grpcPort>`, 55554 by
default) unless `udf_address` overrides it. A Processor without a UDF
container (or with `srp.skipUdf: "true"`) forwards records unchanged.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream

from config.pipeline import Pipeline, StreamSpec, UdfProcessor
from connectors.kafka_admin import ensure_topics, wait_for_kafka
from connectors.kafka_sink import KafkaOutSink
from connectors.kafka_readers import raw_records
from connectors.kafka_source import KafkaBatchSource, StartupMode
from connectors.rabbitmq import RabbitMQSink, RabbitPublisher
from engine.records import RawRecord
from connectors.udf_client import HeaderBuilder, UdfClient, UdfSettings
from engine.udf_stage import UdfStage, udf_step

log = logging.getLogger(__name__)


class RecordsAsRead:
    """Per-partition handler of the Kafka source: every record, unchanged."""

    def handle(self, records: Any, end_of_input: bool) -> list[RawRecord]:
        return raw_records(records)

    def snapshot(self) -> None:
        return None


def udf_settings(processor: UdfProcessor, udf_address: str | None) -> UdfSettings | None:
    """Where to call the UDF: the override, else the Processor's sidecar address."""
    if processor.udf is None:
        return None
    return UdfSettings(address=udf_address or processor.udf.address, name=processor.name)


def add_udf_processor(
    flow: Dataflow,
    pipeline: Pipeline,
    processor: UdfProcessor,
    *,
    bounded: bool = False,
    udf_address: str | None = None,
    connect_timeout_s: float = 30.0,
    batch_size: int = 500,
    upstream: Mapping[str, Stream[RawRecord]] | None = None,
) -> None:
    """Add the Processor's steps to `flow`. An input found in `upstream` (a
    query of the same dataflow writes it) is taken from that stream instead
    of being read back from Kafka."""
    outputs = [pipeline.stream(name) for name in processor.outputs]
    settings = udf_settings(processor, udf_address)
    if settings is None:
        log.info("%s: no UDF container; records are forwarded unchanged", processor.name)
    else:
        log.info("%s: calling the UDF at %s", processor.name, settings.address)
    for input_name in processor.inputs:
        source = pipeline.stream(input_name)
        dlq_topic = pipeline.dlq_topic(source)
        admin = wait_for_kafka(source.servers, connect_timeout_s, source.kafka_properties)
        ensure_topics(admin, {source.topic: source.partition_count or 1, dlq_topic: 1})
        step = f"{processor.name}_{source.name}"
        if upstream and input_name in upstream:
            records = upstream[input_name]
        else:
            reader = KafkaBatchSource(
                source.servers, source.topic, lambda topic, partition, parts, state: RecordsAsRead(),
                startup=StartupMode(source.startup_mode, source.startup_timestamp_ms),
                bounded=bounded, consumer_config=source.kafka_properties,
                batch_size=batch_size, connect_timeout_s=connect_timeout_s,
            )
            records = op.input(f"{step}_read", flow, reader)
        dead_letter_sink = KafkaOutSink(source.servers, source.kafka_properties)
        for output in outputs:
            out_step = step if len(outputs) == 1 else f"{step}_{output.name}"
            stage = _stage(processor, source, output, dlq_topic, settings)
            split = udf_step(out_step, records, stage)
            op.output(f"{out_step}_write-dead-letters", split.falses, dead_letter_sink)
            op.output(f"{out_step}_write", split.trues, _sink(output, processor.name, connect_timeout_s))


def preflight_rabbitmq(output: StreamSpec, timeout_s: float = 3.0) -> None:
    """Declare the output exchange once at start, so a wrong URL, credentials
    or exchange type is a clear error before anything runs (raises
    RabbitMQConfigError). A broker that is merely down is not an error: the
    sink waits for it."""
    publisher = RabbitPublisher(output.servers, output.topic, connect_timeout_s=timeout_s)
    try:
        publisher.connect()
    except ConnectionError as exc:
        log.warning("%s; the pipeline starts anyway and waits for it", exc)
    finally:
        publisher.close()


def _stage(processor: UdfProcessor, source: StreamSpec, output: StreamSpec, dlq_topic: str,
           settings: UdfSettings | None) -> UdfStage:
    delay = source.time_attribute.watermark_delay_ms if source.time_attribute else 0
    return UdfStage(
        client=UdfClient(settings) if settings else None,
        output_protocol=output.protocol,
        output_topic=output.topic,
        dlq_topic=dlq_topic,
        key_fields=output.key_fields or output.keys or source.key_fields or source.keys,
        header_builder=HeaderBuilder(watermark_delay_ms=delay),
        processor=processor.name,
    )


def _sink(output: StreamSpec, processor: str, connect_timeout_s: float):
    if output.protocol == "rabbitmq":
        preflight_rabbitmq(output)
        return RabbitMQSink(output.servers, output.topic, processor=processor)
    admin = wait_for_kafka(output.servers, connect_timeout_s, output.kafka_properties)
    ensure_topics(admin, {output.topic: output.partition_count or 1})
    return KafkaOutSink(output.servers, output.kafka_properties)
