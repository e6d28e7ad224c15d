"""The resolved pipeline: plain immutable objects that the dataflow consumes.

Everything downstream of `config.loader` reads these objects only; nothing
after resolution reads YAML or environment variables. `config.resolve`
builds them from the Streaming Runtime resources.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, Mapping

Protocol = Literal["kafka", "rabbitmq"]
ValueFormat = Literal["avro", "avro-confluent", "json", "raw"]
StartupMode = Literal["earliest-offset", "latest-offset", "group-offsets", "timestamp"]

LOCAL_KAFKA = "127.0.0.1:9092"
LOCAL_RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/%2F"
DEFAULT_UDF_PORT = 55554


def frozen_map(values: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """A read-only mapping, so resolved configuration cannot drift at run time."""
    return MappingProxyType(dict(values or {}))


@dataclass(frozen=True)
class SchemaField:
    """One column of a Stream's schema, in Avro terms.

    `type` is the Avro primitive (`string`, `long`, `int`, `double`, `float`,
    `boolean`, `bytes`); `logical_type` e.g. `timestamp-millis`.
    `metadata_from` names a Kafka record attribute (`timestamp`, `key`,
    `headers`, ...) the column is read from instead of the Avro record;
    `proctime` marks a processing-time attribute (not in the record either).
    """

    name: str
    type: str
    logical_type: str | None = None
    optional: bool = False
    metadata_from: str | None = None
    proctime: bool = False

    @property
    def in_record(self) -> bool:
        """Whether the column is part of the serialized record value."""
        return self.metadata_from is None and not self.proctime

    @property
    def is_timestamp(self) -> bool:
        return self.logical_type in ("timestamp-millis", "timestamp-micros")

    @property
    def is_numeric(self) -> bool:
        return self.type in ("int", "long", "float", "double") and not self.is_timestamp


@dataclass(frozen=True)
class TimeAttribute:
    """The event-time column and its bounded out-of-orderness.

    `source` is `field` when event time is a record column, `kafka-timestamp`
    when it comes from the Kafka record timestamp (`metadata: {from: timestamp}`).
    """

    column: str
    watermark_delay_ms: int
    source: Literal["field", "kafka-timestamp"] = "field"
    watermark_expression: str = ""


@dataclass(frozen=True)
class StreamSpec:
    """A `Stream` resource resolved: where its data lives and how it is encoded."""

    name: str  # metadata.name, what [[STREAM:name]] refers to
    topic: str  # spec.name, else metadata.name: Kafka topic or RabbitMQ exchange
    protocol: Protocol
    servers: str  # Kafka bootstrap servers or AMQP URL
    modes: frozenset[str] = frozenset({"read"})
    keys: tuple[str, ...] = ()
    key_fields: tuple[str, ...] = ()  # from ddl.key.fields, else keys
    value_format: ValueFormat = "avro"
    schema_namespace: str | None = None
    schema_name: str | None = None
    fields: tuple[SchemaField, ...] = ()
    avro_schema_json: str | None = None  # the record's Avro schema (in-record fields only), canonical JSON
    time_attribute: TimeAttribute | None = None
    startup_mode: StartupMode = "group-offsets"
    startup_timestamp_ms: int | None = None
    schema_registry_url: str | None = None
    partition_count: int | None = None
    kafka_properties: Mapping[str, str] = field(default_factory=frozen_map)  # properties.* -> client config
    options: Mapping[str, str] = field(default_factory=frozen_map)  # WITH (...) options, ddl. prefix removed

    @property
    def readable(self) -> bool:
        return "read" in self.modes

    @property
    def writable(self) -> bool:
        return "write" in self.modes

    def field_named(self, name: str) -> SchemaField | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True)
class UdfSpec:
    """The UDF container of an SRP Processor, reached over gRPC."""

    container: str
    image: str | None
    host: str = "localhost"
    port: int = DEFAULT_UDF_PORT

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class UdfTuning:
    """How patiently a UDF is called, from the Processor's `srp.udf.*` attributes."""

    max_in_flight: int = 16  # srp.udf.maxInFlight: calls under way at once
    deadline_ms: int = 5_000  # srp.udf.deadline: one call's deadline
    busy_retries: int | None = 10  # srp.udf.busyRetries: retries of a busy UDF; None (`unlimited`): forever
    ordered_by_key: bool = True  # srp.udf.orderedByKey: calls for one key one after the other, in input order


@dataclass(frozen=True)
class QueryProcessor:
    """A streaming-SQL stage. `raw_query` is the text of the resource;
    `query` has each `[[STREAM:name]]` placeholder replaced by the stream's
    name as a backtick-quoted identifier (`` `iot-monitoring-stream` ``),
    after checking that the stream exists."""

    name: str
    query: str
    raw_query: str
    attributes: Mapping[str, str] = field(default_factory=frozen_map)
    batch_size: int | None = None  # input.batchSize: records per read at most (None: the run's default)


@dataclass(frozen=True)
class UdfProcessor:
    """An SRP stage: read `inputs`, call the UDF per message, write `outputs`."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    udf: UdfSpec | None
    attributes: Mapping[str, str] = field(default_factory=frozen_map)
    tuning: UdfTuning = UdfTuning()
    batch_size: int | None = None  # input.batchSize: records per read at most (None: the run's default)


@dataclass(frozen=True)
class EngineSettings:
    """Event-time engine knobs (docs/semantics.md), from Processor/Stream options."""

    idle_timeout_ms: int | None = 5_000  # None (or 0 in the YAML): idleness detection off, as in Flink
    max_future_skew_ms: int | None = 600_000  # None: guard switched off
    quiet_advance: bool = True  # advance the watermark with processing time when every partition is idle
    max_watermark_drift_ms: int | None = 60_000  # a partition this far ahead of the others' backlog pauses; None: off
    late_topic_suffix: str = "-late"
    dlq_topic_suffix: str = "-dlq"


@dataclass(frozen=True)
class Pipeline:
    """All that a run needs, resolved from one YAML file."""

    source_file: str
    streams: Mapping[str, StreamSpec]
    query_processors: tuple[QueryProcessor, ...]
    udf_processors: tuple[UdfProcessor, ...]
    settings: EngineSettings = EngineSettings()

    def stream(self, name: str) -> StreamSpec:
        return self.streams[name]

    def late_topic(self, stream: StreamSpec) -> str:
        """Where records read from `stream` go when their windows had fired."""
        return stream.topic + self.settings.late_topic_suffix

    def dlq_topic(self, stream: StreamSpec) -> str:
        """Where records read from `stream` go when they cannot be used."""
        return stream.topic + self.settings.dlq_topic_suffix
