"""What a run needs to exist on the brokers before its dataflow is built.

Computed once from the pipeline and the plans of the Processors that run:
every Kafka topic a query or UDF stage reads or writes (inputs, outputs, the
late and dead-letter side topics), grouped by cluster, with the settings a
topic needs (an upsert-kafka Stream's is compacted), and every RabbitMQ
exchange an output publishes to. `connectors.preflight` creates them; the
dataflow, `iot-monitoring demo` and `iot-monitoring generate` all go through
it, so they agree on names and partition counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Iterable, Mapping

from config.pipeline import Pipeline, StreamSpec, TlsSettings, UdfProcessor
from config.sql.plan import Plan


COMPACTED = MappingProxyType({"cleanup.policy": "compact"})
"""The topic settings of an upsert-kafka Stream: Kafka keeps the last value per key."""


@dataclass(frozen=True)
class KafkaTopics:
    """Topics of one Kafka cluster (servers plus client settings), name -> partitions,
    and the settings a topic must be created with (name -> settings; most have none)."""

    servers: str
    properties: Mapping[str, str]
    topics: Mapping[str, int]
    configs: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Exchange:
    """A RabbitMQ topic exchange an output Stream publishes to."""

    url: str
    name: str
    tls: TlsSettings | None = None  # an amqps:// URL's CA and client certificate


@dataclass(frozen=True)
class Needs:
    kafka: tuple[KafkaTopics, ...] = ()
    exchanges: tuple[Exchange, ...] = ()

    def topics(self) -> dict[str, int]:
        """Every topic, over all clusters (for messages and tests)."""
        return {name: n for group in self.kafka for name, n in group.topics.items()}


@dataclass
class _Collector:
    groups: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, int]] = field(default_factory=dict)
    configs: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, Mapping[str, str]]] = field(default_factory=dict)
    properties: dict[tuple[str, tuple[tuple[str, str], ...]], Mapping[str, str]] = field(default_factory=dict)
    exchanges: dict[tuple[str, str], Exchange] = field(default_factory=dict)

    def topic(self, stream: StreamSpec, name: str | None = None, partitions: int | None = None) -> None:
        key = (stream.servers, tuple(sorted(stream.kafka_properties.items())))
        self.properties.setdefault(key, stream.kafka_properties)
        topics = self.groups.setdefault(key, {})
        topic = name or stream.topic
        wanted = partitions or stream.partition_count or 1
        topics[topic] = max(topics.get(topic, 0), wanted)
        if stream.upsert and name is None:  # the stream's own topic, not its side topics
            self.configs.setdefault(key, {})[topic] = COMPACTED

    def output(self, stream: StreamSpec) -> None:
        if stream.protocol == "rabbitmq":
            self.exchanges.setdefault((stream.servers, stream.topic), Exchange(stream.servers, stream.topic, stream.tls))
        else:
            self.topic(stream)

    def needs(self) -> Needs:
        kafka = tuple(
            KafkaTopics(servers, self.properties[(servers, props)], MappingProxyType(dict(topics)),
                        MappingProxyType(dict(self.configs.get((servers, props), {}))))
            for (servers, props), topics in self.groups.items()
        )
        return Needs(kafka, tuple(self.exchanges.values()))


def needs_of(pipeline: Pipeline, plans: Iterable[Plan], udf_processors: Iterable[UdfProcessor]) -> Needs:
    """The topics and exchanges the given queries and UDF stages read and write."""
    c = _Collector()
    for plan in plans:
        for name in plan_sources(plan):
            source = pipeline.stream(name)
            c.topic(source)
            c.topic(source, pipeline.dlq_topic(source), 1)
            if plan.window is not None:
                c.topic(source, pipeline.late_topic(source), 1)
        c.output(pipeline.stream(plan.sink))
    for processor in udf_processors:
        for name in processor.inputs:
            source = pipeline.stream(name)
            c.topic(source)
            c.topic(source, pipeline.dlq_topic(source), 1)
        for name in processor.outputs:
            c.output(pipeline.stream(name))
    return c.needs()


def stream_needs(stream: StreamSpec, partitions: int | None = None, *, topic: str | None = None,
                 servers: str | None = None) -> Needs:
    """One stream's own topic (what a producer of it needs); `topic` and
    `servers` replace the stream's when a command line says so."""
    name = topic or stream.topic
    topics = {name: partitions or stream.partition_count or 1}
    configs = {name: COMPACTED} if stream.upsert else {}
    return Needs((KafkaTopics(servers or stream.servers, stream.kafka_properties, MappingProxyType(topics),
                              MappingProxyType(configs)),))


def plan_sources(plan: Plan) -> tuple[str, ...]:
    """The input streams of a plan (a join reads two)."""
    return tuple(dict.fromkeys(plan.sources))
