"""The resolved pipeline: plain immutable objects that the dataflow consumes.

Everything downstream of `config.loader` reads these objects only; nothing
after resolution reads YAML or environment variables. `config.resolve`
builds them from the Streaming Runtime resources.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, Mapping

from runtime.redact import redact_mapping, redact_url

Protocol = Literal["kafka", "rabbitmq"]
Connector = Literal["kafka", "upsert-kafka", "rabbitmq"]
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

    def describe(self) -> str:
        kind = self.type + (f" ({self.logical_type})" if self.logical_type else "")
        notes = []
        if self.optional:
            notes.append("optional")
        if self.metadata_from:
            notes.append(f"from metadata {self.metadata_from}")
        if self.proctime:
            notes.append("processing time")
        return f"{self.name}: {kind}" + (f" [{', '.join(notes)}]" if notes else "")


@dataclass(frozen=True)
class TimeAttribute:
    """The event-time column and its bounded out-of-orderness.

    `source` is `field` when event time is a record column, `kafka-timestamp`
    when it comes from the Kafka record timestamp (`metadata: {from: timestamp}`),
    `header` when it comes from the Kafka header named `header` (the
    Streaming Runtime's `header.<name>` spelling: epoch milliseconds, as
    decimal text or an 8-byte big-endian integer).
    """

    column: str
    watermark_delay_ms: int
    source: Literal["field", "kafka-timestamp", "header"] = "field"
    watermark_expression: str = ""
    header: str | None = None


@dataclass(frozen=True)
class TlsSettings:
    """TLS of a client connection (RabbitMQ, the schema registry, a UDF).

    The server is checked against `ca_file` / `ca_pem` (PEM), else the
    system's CAs; `cert_file` and `key_file` are the client's own
    certificate for mutual TLS. `server_name` is the name the server's
    certificate must carry (default: the host connected to);
    `check_hostname=False` accepts any name from a trusted CA."""

    ca_file: str | None = None
    ca_pem: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    key_password: str | None = field(default=None, repr=False)
    server_name: str | None = None
    check_hostname: bool = True

    def describe(self) -> str:
        """One line, no secret: what is trusted and whether a client certificate is sent."""
        trust = f"CA {self.ca_file}" if self.ca_file else "CA from a Secret" if self.ca_pem else "system CAs"
        parts = [trust]
        if self.cert_file:
            parts.append(f"client certificate {self.cert_file}")
        if self.server_name:
            parts.append(f"server name {self.server_name}")
        if not self.check_hostname:
            parts.append("host name not checked")
        return ", ".join(parts)


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
    schema_registry_subject_url: str | None = None  # inline avro-confluent: the subject version to fetch at start
    primary_key: tuple[str, ...] = ()
    connector: Connector = "kafka"  # ddl.connector, else the protocol
    partition_count: int | None = None
    kafka_properties: Mapping[str, str] = field(default_factory=frozen_map)  # properties.* -> client config
    options: Mapping[str, str] = field(default_factory=frozen_map)  # WITH (...) options, ddl. prefix removed
    tls: TlsSettings | None = None  # RabbitMQ over TLS (an amqps:// URL)
    schema_registry_settings: Mapping[str, str] = field(default_factory=frozen_map)  # SchemaRegistryClient's auth and TLS keys
    credentials_from: str | None = None  # where the broker credentials came from (a binding, a file), for display

    @property
    def readable(self) -> bool:
        return "read" in self.modes

    @property
    def upsert(self) -> bool:
        """An upsert-kafka stream: the Kafka key is the primary key (JSON) and
        a later value for a key replaces the earlier one; a delete is a
        tombstone (null value)."""
        return self.connector == "upsert-kafka"

    @property
    def schema_pending(self) -> bool:
        """The record's columns live in a schema registry subject, fetched at
        start (`config.resolve.with_registry_schemas`); until then only the
        metadata and time-attribute columns are known."""
        return self.schema_registry_subject_url is not None and not any(f.in_record for f in self.fields)

    @property
    def table_names(self) -> tuple[str, ...]:
        """What a query may call the stream: its `metadata.name` (what
        [[STREAM:name]] becomes) and its schema's record name, which is what
        the Streaming Runtime named the Flink table (`Clicks`, `Users`)."""
        return tuple(dict.fromkeys(n for n in (self.name, self.schema_name) if n))

    @property
    def writable(self) -> bool:
        return "write" in self.modes

    def field_named(self, name: str) -> SchemaField | None:
        return next((f for f in self.fields if f.name == name), None)

    def describe_lines(self) -> list[str]:
        """What the stream resolved to, one fact per line (the table Flink would
        have made of it), for `iot-monitoring validate` and `debugExplain`."""
        lines = [
            f"topic        {self.topic} ({self.protocol} at {redact_url(self.servers)})",
            f"mode         {', '.join(sorted(self.modes))}",
            f"format       {self.value_format}"
            + (f" (registry {public_url(self.schema_registry_url)})" if self.schema_registry_url else ""),
        ]
        if self.tls is not None:
            lines.append(f"tls          {self.tls.describe()}")
        if self.credentials_from:
            lines.append(f"credentials  from {self.credentials_from}")
        lines += [f"registry     {k}={v}" for k, v in redact_mapping(self.schema_registry_settings).items()]
        if self.connector not in ("kafka", "rabbitmq"):
            lines.append(f"connector    {self.connector}")
        if self.keys:
            lines.append(f"keys         {', '.join(self.keys)}")
        if self.primary_key:
            lines.append(f"primary key  {', '.join(self.primary_key)}")
        if self.key_fields:
            lines.append(f"key fields   {', '.join(self.key_fields)}")
        if self.schema_pending:
            lines.append(f"schema       from {public_url(self.schema_registry_subject_url or '')}, fetched at start")
            lines += [f"                   {f.describe()}" for f in self.fields]
        elif self.fields:
            title = ".".join(p for p in (self.schema_namespace, self.schema_name) if p)
            lines.append(f"schema       {title}")
            lines += [f"                   {f.describe()}" for f in self.fields]
        else:
            lines.append("schema       none (payload passed as bytes)")
        if self.time_attribute:
            t = self.time_attribute
            origin = {"kafka-timestamp": "Kafka record timestamp", "header": f"Kafka header {t.header}"}.get(
                t.source, "record field"
            )
            lines.append(f"event time   {t.column} ({origin}), watermark delay {t.watermark_delay_ms} ms")
        if self.protocol == "kafka":
            startup = self.startup_mode
            if self.startup_timestamp_ms is not None:
                startup += f" at {self.startup_timestamp_ms}"
            lines.append(f"startup      {startup}")
        if self.partition_count:
            lines.append(f"partitions   {self.partition_count}")
        lines += [f"kafka        {k}={v}" for k, v in redact_mapping(self.kafka_properties).items()]
        return lines


def public_url(url: str) -> str:
    """A URL without its user and password, for output and messages; also a
    malformed one (`amqp//user:password@host`, a password with a `/` or an `@`):
    everything from the `//` to the last `@` goes."""
    scheme, sep, rest = url.partition("//")
    if not sep or "@" not in rest:
        return url
    return f"{scheme}{sep}{rest.rsplit('@', 1)[1]}"


@dataclass(frozen=True)
class UdfSpec:
    """The UDF container of an SRP Processor, reached over gRPC."""

    container: str
    image: str | None
    host: str = "localhost"
    port: int = DEFAULT_UDF_PORT
    tls: TlsSettings | None = None  # None: plaintext (the sidecar on localhost)

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
class DebugAttributes:
    """A Processor's `debugQuery` and `debugExplain`, as they apply to one of its queries.

    The Streaming Runtime numbered a Processor's statements: one CREATE TABLE
    per stream its queries name (here: in the order they are first named),
    then the queries; `debugExplain` lists the numbers to explain at start.
    `explain_plan` says whether this query's number is listed,
    `explain_streams` which streams' tables are. `query` is the debug query
    (rows of a stream the Processor writes, logged at debug level).
    `warnings` are what cannot be honoured but does not stop the pipeline
    (the Streaming Runtime logged a warning for an index out of range).
    `config.sql.debug.debug_output` turns them into what the dataflow logs.
    """

    query: str | None = None
    explain: tuple[int, ...] = ()
    explain_plan: bool = False
    explain_streams: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()  # the streams the Processor's queries write

    @property
    def enabled(self) -> bool:
        return bool(self.query or self.explain_plan or self.explain_streams)


@dataclass(frozen=True)
class QueryProcessor:
    """A streaming-SQL stage. `raw_query` is the text of the resource;
    `query` has each `[[STREAM:name]]` placeholder replaced by the stream's
    name as a backtick-quoted identifier (`` `iot-monitoring-stream` ``),
    after checking that the stream exists. `state_ttl_ms` is the
    Processor's `table.exec.state.ttl` (join state; None: kept forever)."""

    name: str
    query: str
    raw_query: str
    attributes: Mapping[str, str] = field(default_factory=frozen_map)
    batch_size: int | None = None  # input.batchSize: records per read at most (None: the run's default)
    debug: DebugAttributes = DebugAttributes()
    state_ttl_ms: int | None = None


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
