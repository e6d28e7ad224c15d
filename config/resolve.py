"""Resources -> `config.pipeline.Pipeline`: the one place where their meaning is decided.

Rules follow what the Streaming Runtime did with the same resources, so a
user's pipeline behaves as before:

- topic/exchange = `spec.name`, else `metadata.name`;
- `options` keys starting with `ddl.` lose the prefix and become the stream's
  options (Flink's `WITH (...)`), from which the value format, key fields,
  startup mode and Kafka client properties (`properties.*`) are read;
- `streamMode` absent means the stream may be read and written (the CRD sets
  no default, and the repository's pipeline omits it);
- broker addresses come from a `ClusterStream`'s `spec.storage.server.url`
  when the Stream names one that has it, else from `KAFKA_BOOTSTRAP_SERVERS`
  / `RABBITMQ_URL`, else the local stack's defaults;
- a Kafka stream's security settings come from its `ddl.properties.*`, else
  the binding it or its ClusterStream names, else its ClusterStream's
  `spec.storage.attributes`, else the `KAFKA_*` security variables, in
  librdkafka's names (`config.kafka_security`);
- credentials come from the bindings (`spec.binding`: Secret documents,
  servicebinding.io directories), files and the environment, and RabbitMQ,
  schema registry and UDF TLS settings are resolved by `config.connections`.

The environment is read here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping, Sequence, get_args

from config import kafka_security
from config.bindings import expand_file_variables
from config.connections import Connections
from config.errors import Problem, raise_if_any
from config.loader import FieldPath, LoadedResource, Origin, of_kind
from config.pipeline import (
    DEFAULT_UDF_PORT,
    DebugAttributes,
    LOCAL_KAFKA,
    LOCAL_RABBITMQ,
    EngineSettings,
    Pipeline,
    QueryProcessor,
    StartupMode,
    StreamSpec,
    UdfProcessor,
    UdfSpec,
    UdfTuning,
    ValueFormat,
    frozen_map,
    public_url,
)
from config.brokers import amqp_url_problem
from config.resources import ClusterStream, Processor, QueryInputs, Stream, StreamRef
from config.schema_ids import SCHEMA_ID_OPTION, parse_schema_ids
from config.schemas import complete_schema, resolve_schema, subject_of
from config.timeexpr import parse_boolean, parse_duration_ms

PLACEHOLDER = re.compile(r"\[\[STREAM:(\S*?)\]\]", re.IGNORECASE)
_INSERT_TARGET = re.compile(r"INSERT\s+INTO\s+\[\[STREAM:(\S*?)\]\]", re.IGNORECASE)
DDL_PREFIX = "ddl."
KAFKA_PROPERTIES_PREFIX = "properties."
REGISTRY_OPTIONS = (
    "value.avro-confluent.url",
    "value.avro-confluent.schema-registry.url",
    "avro-confluent.url",
    "avro-confluent.schema-registry.url",
)
VALUE_FORMATS: tuple[str, ...] = get_args(ValueFormat)
STARTUP_MODES: tuple[str, ...] = get_args(StartupMode)
SETTING_KEYS = {
    "idle_timeout_ms": ("table.exec.source.idle-timeout", "idle-timeout"),
    "max_future_skew_ms": ("max-future-skew",),
    "quiet_advance": ("quiet-advance",),
    "max_watermark_drift_ms": ("scan.watermark.alignment.max-drift", "watermark-alignment-max-drift"),
}
STATE_TTL = "table.exec.state.ttl"
DEBUG_QUERY = "debugQuery"
DEBUG_EXPLAIN = "debugExplain"


class _Problems:
    """Collects problems so that one run reports all of them."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def at(self, origin: Origin) -> Reporter:
        return Reporter(origin, self.items)


@dataclass
class Reporter:
    """Records problems of one resource; `count` tells whether a step added any."""

    origin: Origin
    sink: list[Problem]

    def __call__(self, message: str, path: FieldPath = ()) -> None:
        self.sink.append(self.origin.problem(message, path))

    @property
    def count(self) -> int:
        return len(self.sink)


def resolve(loaded: Sequence[LoadedResource], source_file: str, env: Mapping[str, str] | None = None) -> Pipeline:
    """Build the pipeline; raises `ConfigError` listing every problem found."""
    env = os.environ if env is None else env
    loaded = list(loaded)
    problems = _Problems()
    env = expand_file_variables(env, lambda message, variable: problems.items.append(Problem("environment", message)))
    clusters = {item.name: item.resource for item in of_kind(loaded, ClusterStream)}
    declared = {item.name for item in of_kind(loaded, Stream)}
    streams: dict[str, StreamSpec] = {}
    security = _SecurityLayers.of(loaded, env, problems)
    connections = Connections(loaded, env, problems.items)
    for item in of_kind(loaded, Stream):
        spec = _stream(item, clusters, env, problems.at(item.origin))
        if spec is not None:
            report = problems.at(item.origin)
            bound = connections.kafka_binding(item, report)
            spec = security.apply(spec, item, report, bound.properties, bound.fallback)
            streams[item.name] = connections.apply(spec, item, report, bound)

    queries: list[QueryProcessor] = []
    udfs: list[UdfProcessor] = []
    for item in of_kind(loaded, Processor):
        links = _Links(declared, streams, problems.at(item.origin))
        q, u = _processor(item, links, problems.at(item.origin))
        queries += q
        udfs += [connections.udf(udf, problems.at(item.origin)) for udf in u]
    if not of_kind(loaded, Processor):
        problems.items.append(Problem(source_file, "no Processor found: the file describes streams but nothing to run"))

    settings = _engine_settings(loaded, problems)
    raise_if_any(problems.items)
    return Pipeline(
        source_file=source_file,
        streams=MappingProxyType(streams),
        query_processors=tuple(queries),
        udf_processors=tuple(udfs),
        settings=settings,
    )


def with_registry_schemas(pipeline: Pipeline, schemas: Mapping[str, str]) -> Pipeline:
    """The pipeline with the record columns of every stream whose schema is a
    registry subject (`StreamSpec.schema_pending`), from the schema texts the
    start-up preflight fetched (stream name -> Avro schema JSON); raises
    `ConfigError` when one is missing or does not fit the stream."""
    problems: list[Problem] = []
    streams = dict(pipeline.streams)
    for name, stream in pipeline.streams.items():
        if not stream.schema_pending:
            continue
        url = public_url(stream.schema_registry_subject_url or "")
        text = schemas.get(name)
        if text is None:
            problems.append(Problem(pipeline.source_file, f"the schema of {url} was not fetched", resource=f"Stream/{name}"))
            continue
        completed, found = complete_schema(stream, text)
        problems += [Problem(pipeline.source_file, f"schema of {url}: {m}", resource=f"Stream/{name}") for m in found]
        streams[name] = completed
    raise_if_any(problems)
    return dataclasses.replace(pipeline, streams=MappingProxyType(streams))


# --- streams -------------------------------------------------------------------


def _stream(
    item: LoadedResource, clusters: Mapping[str, ClusterStream], env: Mapping[str, str], report: Reporter
) -> StreamSpec | None:
    resource = item.resource
    assert isinstance(resource, Stream)
    spec = resource.spec
    context = spec.data_schema_context
    before = report.count
    topic = spec.name or resource.metadata.name

    raw_options = context.options if context else {}
    options = {k[len(DDL_PREFIX):]: v for k, v in raw_options.items() if k.startswith(DDL_PREFIX)}

    def option_path(key: str) -> tuple[str, ...]:
        return ("spec", "dataSchemaContext", "options", DDL_PREFIX + key)

    registry = (context.schema_registry_uri if context else None) or next(
        (options[k] for k in REGISTRY_OPTIONS if options.get(k)), None
    )
    schema = resolve_schema(context, report, topic=topic, registry_url=registry)
    if registry is None and schema.registry_subject_url:
        registry = subject_of(schema.registry_subject_url)[0]  # type: ignore[index]
    value_format = _value_format(spec.protocol, options, schema.has_record, context, registry, report, option_path)
    connector = _connector(spec.protocol, options, report, option_path)

    # Flink separates key.fields with ';', the Streaming Runtime's samples with ','.
    explicit_keys = [k.strip() for k in re.split(r"[;,]", options.get("key.fields", "")) if k.strip()]
    key_fields = tuple(explicit_keys) if explicit_keys else tuple(spec.keys)
    if any(f.in_record for f in schema.fields):
        names = {f.name for f in schema.fields}
        for i, key in enumerate(spec.keys):
            if key not in names:
                report(f"key {key!r} is not a field of the schema", ("spec", "keys", i))
        if options.get("key.fields"):
            for key in key_fields:
                if key not in names:
                    report(f"key field {key!r} is not a field of the schema", option_path("key.fields"))
    key_fields = _upsert_key(connector, schema.primary_key, key_fields, options, report, option_path)

    startup_mode, startup_ts = _startup(options, report, option_path)
    try:
        parse_schema_ids(options.get(SCHEMA_ID_OPTION))
    except ValueError as exc:
        report(str(exc), option_path(SCHEMA_ID_OPTION))
    servers = _servers(spec.protocol, spec.storage.cluster_stream if spec.storage else None, clusters, env, report)
    if report.count > before:
        return None
    return StreamSpec(
        name=resource.metadata.name,
        topic=topic,
        protocol=spec.protocol,
        servers=servers,
        modes=frozenset(spec.stream_mode) if spec.stream_mode is not None else frozenset({"read", "write"}),
        keys=tuple(spec.keys),
        key_fields=key_fields,
        value_format=value_format,  # type: ignore[arg-type]
        schema_namespace=schema.namespace,
        schema_name=schema.name,
        fields=schema.fields,
        avro_schema_json=schema.avro_schema_json,
        time_attribute=schema.time_attribute,
        startup_mode=startup_mode,  # type: ignore[arg-type]
        startup_timestamp_ms=startup_ts,
        schema_registry_url=registry,
        schema_registry_subject_url=schema.registry_subject_url,
        primary_key=schema.primary_key,
        connector=connector,  # type: ignore[arg-type]
        partition_count=spec.partition_count,
        kafka_properties=frozen_map(
            {k[len(KAFKA_PROPERTIES_PREFIX):]: v for k, v in options.items() if k.startswith(KAFKA_PROPERTIES_PREFIX)}
        ),
        options=frozen_map(options),
    )


@dataclass(frozen=True)
class _SecurityLayers:
    """The Kafka security settings of the ClusterStreams and of the
    environment, each translated (and its problems reported) once."""

    clusters: Mapping[str, dict[str, str]]
    env: dict[str, str]

    @classmethod
    def of(cls, loaded: Sequence[LoadedResource], env: Mapping[str, str], problems: _Problems) -> "_SecurityLayers":
        def env_problem(message: str, variable: str) -> None:
            problems.items.append(Problem("environment", f"{variable}: {message}"))

        clusters = {}
        for item in of_kind(loaded, ClusterStream):
            storage = item.resource.spec.storage  # type: ignore[union-attr]
            attributes = storage.attributes if storage else {}
            plain = {k.removeprefix(KAFKA_PROPERTIES_PREFIX): v for k, v in attributes.items()
                     if kafka_security.is_security_key(k.removeprefix(KAFKA_PROPERTIES_PREFIX))}
            origin_key = {k.removeprefix(KAFKA_PROPERTIES_PREFIX): k for k in attributes}
            report = problems.at(item.origin)
            clusters[item.name] = kafka_security.translate(
                plain, lambda message, key, r=report: r(message, ("spec", "storage", "attributes", origin_key.get(key, key)))
            )
        return cls(clusters, kafka_security.from_environment(env, env_problem))

    def apply(self, spec: StreamSpec, item: LoadedResource, report: Reporter,
              bound: Mapping[str, str] | None = None, fallback: Mapping[str, str] | None = None) -> StreamSpec:
        """The stream with its Kafka properties in librdkafka's names, the
        security settings layered: the Stream's, its binding's (`bound`), its
        ClusterStream's, the environment's, a binding found by type (`fallback`)."""
        if spec.protocol != "kafka":
            return spec
        own = kafka_security.translate(
            spec.kafka_properties,
            lambda message, key: report(message, ("spec", "dataSchemaContext", "options", f"{DDL_PREFIX}{KAFKA_PROPERTIES_PREFIX}{key}")),
        )
        storage = item.resource.spec.storage  # type: ignore[union-attr]
        cluster = self.clusters.get(storage.cluster_stream, {}) if storage and storage.cluster_stream else {}
        others = {k: v for k, v in spec.kafka_properties.items() if not kafka_security.is_security_key(k)}
        binding = kafka_security.translate(bound or {}, lambda message, key: report(f"the binding's {key}: {message}", ("spec", "binding")))
        found = kafka_security.translate(fallback or {}, lambda message, key: None)  # a fallback's mistakes are not the YAML's
        layered = kafka_security.layered([own, binding, cluster, self.env, found])
        return dataclasses.replace(spec, kafka_properties=frozen_map({**others, **layered}))


def _connector(protocol: str, options: Mapping[str, str], report: Reporter, option_path) -> str:
    """`ddl.connector`, else the protocol (what the Streaming Runtime put in WITH (...))."""
    connector = options.get("connector") or protocol
    allowed = ("kafka", "upsert-kafka") if protocol == "kafka" else ("rabbitmq",)
    if connector not in allowed:
        report(
            f"unsupported connector {connector!r} for a {protocol} stream (expected {' or '.join(allowed)})",
            option_path("connector"),
        )
        return protocol
    return connector


def _upsert_key(
    connector: str,
    primary_key: tuple[str, ...],
    key_fields: tuple[str, ...],
    options: Mapping[str, str],
    report: Reporter,
    option_path,
) -> tuple[str, ...]:
    """Flink's upsert-kafka: the Kafka key is the JSON object of the primary
    key columns, the value the whole row. A primary key on a plain kafka
    stream is refused, as Flink refuses it (the connector cannot keep it)."""
    key_path = ("spec", "dataSchemaContext", "primaryKey")
    if connector != "upsert-kafka":
        if primary_key:
            report(
                "a primary key needs ddl.connector: upsert-kafka; a plain kafka stream cannot guarantee one"
                " (Flink refuses it too)",
                key_path,
            )
        return key_fields
    if not primary_key:
        report(
            "an upsert-kafka stream needs a primary key: list its columns in spec.dataSchemaContext.primaryKey",
            option_path("connector"),
        )
    if options.get("key.fields"):
        report("upsert-kafka writes the primary key as the Kafka key; remove ddl.key.fields", option_path("key.fields"))
    if options.get("key.format", "json") != "json":
        report(
            f"upsert-kafka keys are written as JSON (key.format: json), not {options['key.format']!r}",
            option_path("key.format"),
        )
    return primary_key


def _value_format(protocol, options, has_schema, context, registry, report, option_path) -> str:
    """Explicit `value.format` wins. Otherwise a Kafka stream with an Avro schema is
    `avro-confluent`: the Streaming Runtime's data generator writes Avro with the
    Confluent framing (magic byte + schema id) even when no registry is named, so
    plain Avro would misread every record of the seed's input topic. A schema
    registry URL, or `inline.type: avro-confluent`, also means `avro-confluent`.
    Without a schema the payload is opaque bytes (`raw`)."""
    explicit = options.get("value.format") or options.get("format")
    if explicit:
        key = "value.format" if options.get("value.format") else "format"
        if explicit not in VALUE_FORMATS:
            report(f"unsupported value format {explicit!r} (expected one of {', '.join(VALUE_FORMATS)})", option_path(key))
        elif explicit in ("avro", "avro-confluent") and not has_schema:
            report(f"value format {explicit!r} needs a schema in spec.dataSchemaContext", option_path(key))
        return explicit
    if not has_schema:
        return "raw"
    if registry or (context.inline is not None and context.inline.type == "avro-confluent"):
        return "avro-confluent"
    return "avro-confluent" if protocol == "kafka" else "avro"


def _startup(options: Mapping[str, str], report: Reporter, option_path) -> tuple[str, int | None]:
    mode = options.get("scan.startup.mode", "group-offsets")
    if mode not in STARTUP_MODES:
        report(f"unsupported startup mode {mode!r} (expected one of {', '.join(STARTUP_MODES)})", option_path("scan.startup.mode"))
        return mode, None
    if mode != "timestamp":
        return mode, None
    text = options.get("scan.startup.timestamp-millis")
    if text is None or not text.strip().isdigit():
        report(
            "startup mode 'timestamp' needs ddl.scan.startup.timestamp-millis (epoch milliseconds)"
            + (f", got {text!r}" if text is not None else ""),
            option_path("scan.startup.timestamp-millis" if text is not None else "scan.startup.mode"),
        )
        return mode, None
    return mode, int(text)


def _servers(protocol: str, cluster_name: str | None, clusters: Mapping[str, ClusterStream], env: Mapping[str, str], report) -> str:
    """A named ClusterStream with a server URL wins; a missing one is auto-provisioned (SR did the same).
    A RabbitMQ URL is checked here, so that `validate` finds what the sink would refuse."""
    cluster = clusters.get(cluster_name) if cluster_name else None
    storage = cluster.spec.storage if cluster else None
    server = storage.first_server if storage else None
    if server is not None and server.url:
        if server.protocol and server.protocol != protocol:
            report(
                f"ClusterStream {cluster_name!r} serves protocol {server.protocol!r}, but the stream uses {protocol!r}",
                ("spec", "storage", "clusterStream"),
            )
        url = _normalise_server(server.url, protocol)
        where = f"ClusterStream {cluster_name!r} (spec.storage.server.url)"
    elif protocol == "kafka":
        return env.get("KAFKA_BOOTSTRAP_SERVERS") or LOCAL_KAFKA
    else:
        url, where = env.get("RABBITMQ_URL") or LOCAL_RABBITMQ, "RABBITMQ_URL in the environment"
    if protocol == "rabbitmq":
        problem = amqp_url_problem(url)
        if problem is not None:
            report(f"the AMQP URL of {where}, {public_url(url)}, is malformed: {problem}",
                   ("spec", "storage", "clusterStream") if cluster_name else ("spec", "protocol"))
    return url


def _normalise_server(url: str, protocol: str) -> str:
    """Kafka wants `host:port[,host:port]`; RabbitMQ an AMQP URL."""
    if protocol == "kafka":
        return ",".join(part.strip().split("://", 1)[-1].rstrip("/") for part in url.split(","))
    return url if "://" in url else f"amqp://{url}"


# --- processors ----------------------------------------------------------------


@dataclass
class _Links:
    """Checks a Processor's references to streams: they exist and allow the access."""

    declared: set[str]
    streams: Mapping[str, StreamSpec]
    report: Reporter

    def check(self, name: str, mode: str, path: FieldPath, what: str) -> bool:
        if name not in self.declared:
            hint = difflib.get_close_matches(name, sorted(self.declared), n=1, cutoff=0.6)
            known = ", ".join(sorted(self.declared)) or "none"
            self.report(
                f"unknown stream {name!r} in {what}"
                + (f" (did you mean {hint[0]!r}?)" if hint else f" (known streams: {known})"),
                path,
            )
            return False
        spec = self.streams.get(name)
        if spec is not None and mode not in spec.modes:
            verb = "written" if mode == "write" else "read"
            self.report(
                f"stream {name!r} cannot be {verb}: its streamMode is [{', '.join(sorted(spec.modes))}], add {mode!r}",
                path,
            )
            return False
        return True


def _processor(item: LoadedResource, links: _Links, report: Reporter) -> tuple[list[QueryProcessor], list[UdfProcessor]]:
    resource = item.resource
    assert isinstance(resource, Processor)
    spec = resource.spec
    name = resource.metadata.name
    seed_form = isinstance(spec.inputs, QueryInputs)

    if spec.type == "SCS":
        report("Processor type 'SCS' (a Spring Cloud Stream application) is not supported; use FSQL or SRP", ("spec", "type"))
        return [], []
    if spec.type == "FSQL":
        if not spec.inline_query:
            report("a FSQL Processor needs its SQL in spec.inlineQuery", ("spec", "inlineQuery"))
        if seed_form and spec.inputs.query:  # type: ignore[union-attr]
            report("a FSQL Processor takes its SQL from spec.inlineQuery, not spec.inputs.query", ("spec", "inputs", "query"))
        if spec.containers:
            report("a FSQL Processor runs no containers; put the UDF in a Processor of type SRP", ("spec", "template"))
        texts = [(q, ("spec", "inlineQuery", i)) for i, q in enumerate(spec.inline_query or [])]
        return _queries(name, texts, spec.attributes, links), []

    if spec.inline_query:
        report(f"spec.inlineQuery is only run by Processors of type FSQL (this one is {spec.type})", ("spec", "inlineQuery"))
    texts: list[tuple[str, FieldPath]] = []
    if seed_form:
        texts = [(q, ("spec", "inputs", "query", i)) for i, q in enumerate(spec.inputs.query)]  # type: ignore[union-attr]
        inputs: list[StreamRef] = spec.inputs.sources  # type: ignore[union-attr]
        input_path: tuple[str, ...] = ("spec", "inputs", "sources")
    else:
        inputs = spec.inputs or []  # type: ignore[assignment]
        input_path = ("spec", "inputs")
    queries = _queries(name, texts, spec.attributes, links)
    udf = _udf_processor(name, spec, inputs, input_path, links, report)
    if not texts and not (inputs or spec.outputs or spec.containers):
        report("the Processor does nothing: it has no query, no inputs and no outputs", ("spec",))
    return queries, [udf] if udf else []


def _queries(name: str, texts: list[tuple[str, FieldPath]], attributes: Mapping[str, str], links: _Links) -> list[QueryProcessor]:
    out = []
    batch_size = _batch_size(attributes, links.report) if texts else None
    if batch_size is False:
        return out
    ttl = _state_ttl(attributes, links.report)
    debug = _debug_attributes(name, [raw for raw, _ in texts], attributes, links.report)
    for i, (raw, path) in enumerate(texts):
        ok = True
        targets = {m.group(1).lower() for m in _INSERT_TARGET.finditer(raw)}
        for match in PLACEHOLDER.finditer(raw):
            stream = match.group(1)
            mode = "write" if stream.lower() in targets else "read"
            ok &= links.check(stream, mode, path, match.group(0))
        if not PLACEHOLDER.search(raw):
            links.report("the query names no stream: refer to streams as [[STREAM:<metadata.name>]]", path)
            ok = False
        if ok:
            query = PLACEHOLDER.sub(lambda m: f"`{m.group(1)}`", raw)
            out.append(
                QueryProcessor(
                    name if len(texts) == 1 else f"{name}-{i + 1}", query, raw, frozen_map(attributes),
                    batch_size=batch_size or None, debug=debug[i], state_ttl_ms=ttl,
                )
            )
    return out


def _state_ttl(attributes: Mapping[str, str], report: Reporter) -> int | None:
    """Flink's `table.exec.state.ttl` (join state, processing time); 0 or absent keeps state forever."""
    text = attributes.get(STATE_TTL)
    if text is None:
        return None
    try:
        ttl = parse_duration_ms(text)
    except ValueError as exc:
        report(f"{STATE_TTL}: {exc}", ("spec", "attributes", STATE_TTL))
        return None
    return ttl or None


def _debug_attributes(
    processor: str, queries: Sequence[str], attributes: Mapping[str, str], report: Reporter
) -> list[DebugAttributes]:
    """`debugQuery` and `debugExplain` of a Processor, for each of its queries.

    `debugExplain` numbers the Processor's statements as the Streaming
    Runtime did: first one table per stream the queries name (here in the
    order first named), then the queries. A number that names nothing is a
    warning, as it was there, not an error.
    """
    streams = list(dict.fromkeys(m.group(1) for raw in queries for m in PLACEHOLDER.finditer(raw)))
    path = ("spec", "attributes", DEBUG_EXPLAIN)
    indices: list[int] = []
    for part in attributes.get(DEBUG_EXPLAIN, "").split(","):
        if not part.strip():
            continue
        if not part.strip().isdigit():
            report(
                f"debugExplain lists statement numbers separated by commas (e.g. \"2\" or \"4,5\"), not {part.strip()!r}",
                path,
            )
            continue
        indices.append(int(part))
    count = len(streams) + len(queries)
    warnings = [
        f"Processor {processor}: debugExplain names statement {index}, which does not exist;"
        f" {_statement_list(streams, len(queries))}"
        for index in indices
        if index >= count
    ]
    query = attributes.get(DEBUG_QUERY) or None
    explained_streams = tuple(streams[i] for i in indices if i < len(streams))
    outputs = tuple(dict.fromkeys(m.group(1) for raw in queries for m in _INSERT_TARGET.finditer(raw)))
    return [
        DebugAttributes(
            query=query,
            explain=tuple(indices),
            explain_plan=(len(streams) + i) in indices,
            explain_streams=explained_streams if i == 0 else (),
            warnings=tuple(warnings) if i == 0 else (),
            outputs=outputs,
        )
        for i in range(len(queries))
    ]


def _statement_list(streams: Sequence[str], queries: int) -> str:
    """What debugExplain's numbers name, as the Streaming Runtime counted them."""
    def numbers(first: int, n: int) -> str:
        return str(first) if n == 1 else f"{first} to {first + n - 1}"

    tables = f"{numbers(0, len(streams))}: the tables of {', '.join(streams)}; " if streams else ""
    return f"its statements are {tables}{numbers(len(streams), queries)}: its {'query' if queries == 1 else 'queries'}"


def _udf_processor(name, spec, inputs: list[StreamRef], input_path, links: _Links, report) -> UdfProcessor | None:
    containers = spec.containers
    if not inputs and not spec.outputs and not containers:
        return None
    ok = True
    if not inputs:
        report("a UDF stage needs at least one input stream", input_path)
        ok = False
    if not spec.outputs:
        report("a UDF stage needs at least one output stream", ("spec", "outputs"))
        ok = False
    for i, ref in enumerate(inputs):
        ok &= links.check(ref.name, "read", (*input_path, i, "name"), "the inputs")
    for i, ref in enumerate(spec.outputs):
        ok &= links.check(ref.name, "write", ("spec", "outputs", i, "name"), "the outputs")

    attributes = spec.attributes
    port = DEFAULT_UDF_PORT
    if "srp.grpcPort" in attributes:
        text = attributes["srp.grpcPort"]
        if text.strip().isdigit() and 0 < int(text) < 65536:
            port = int(text)
        else:
            report(f"srp.grpcPort must be a port number (1-65535), got {text!r}", ("spec", "attributes", "srp.grpcPort"))
            ok = False
    if "srp.window" in attributes:
        report(
            "srp.window (the SRP's own window aggregation) is not supported; window the stream in a FSQL query",
            ("spec", "attributes", "srp.window"),
        )
        ok = False
    tuning = _udf_tuning(attributes, report)
    batch_size = _batch_size(attributes, report)
    ok &= tuning is not None and batch_size is not False
    skip_udf = attributes.get("srp.skipUdf", "false").lower() == "true"
    udf = None
    if containers and not skip_udf:
        udf = UdfSpec(container=containers[0].name, image=containers[0].image, port=port)
    if not ok:
        return None
    return UdfProcessor(
        name=name,
        inputs=tuple(ref.name for ref in inputs),
        outputs=tuple(ref.name for ref in spec.outputs),
        udf=udf,
        attributes=frozen_map(attributes),
        tuning=tuning,  # type: ignore[arg-type]
        batch_size=batch_size or None,
    )


UDF_TUNING_KEYS = {
    "srp.udf.maxInFlight": "max_in_flight",
    "srp.udf.deadline": "deadline_ms",
    "srp.udf.busyRetries": "busy_retries",
    "srp.udf.orderedByKey": "ordered_by_key",
}
BATCH_SIZE_KEY = "input.batchSize"


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) <= 0:
        raise ValueError(f"expected a positive whole number, got {text!r}")
    return int(text)


def _retries(text: str) -> int | None:
    if text.strip().lower() == "unlimited":
        return None
    if not text.strip().isdigit():
        raise ValueError(f"expected a whole number or 'unlimited', got {text!r}")
    return int(text)


def _positive_duration_ms(text: str) -> int:
    value = parse_duration_ms(text)
    if value <= 0:
        raise ValueError(f"expected a positive duration, got {text!r}")
    return value


def _udf_tuning(attributes: Mapping[str, str], report: Reporter) -> UdfTuning | None:
    """`srp.udf.*` attributes: how the UDF is called (in flight, deadline, retries, ordering)."""
    parsers: dict[str, Callable[[str], object]] = {
        "max_in_flight": _positive_int,
        "deadline_ms": _positive_duration_ms,
        "busy_retries": _retries,
        "ordered_by_key": parse_boolean,
    }
    values: dict[str, object] = {}
    ok = True
    for key, name in UDF_TUNING_KEYS.items():
        if key in attributes:
            try:
                values[name] = parsers[name](attributes[key])
            except ValueError as exc:
                report(f"{key}: {exc}", ("spec", "attributes", key))
                ok = False
    return UdfTuning(**values) if ok else None  # type: ignore[arg-type]


def _batch_size(attributes: Mapping[str, str], report: Reporter) -> int | None | bool:
    """`input.batchSize`: records per read of a partition at most; False when malformed."""
    if BATCH_SIZE_KEY not in attributes:
        return None
    try:
        return _positive_int(attributes[BATCH_SIZE_KEY])
    except ValueError as exc:
        report(f"{BATCH_SIZE_KEY}: {exc}", ("spec", "attributes", BATCH_SIZE_KEY))
        return False


# --- engine settings -----------------------------------------------------------


def _duration_or_off(text: str) -> int | None:
    """A duration in milliseconds, or None for `off` (the guard or rule switched off)."""
    return None if text.strip().lower() == "off" else parse_duration_ms(text)


def _idle_timeout_ms(text: str) -> int | None:
    """As in Flink, `0` (or `off`) switches idleness detection off: no partition is ever idle."""
    return _duration_or_off(text) or None


def _engine_settings(loaded: Sequence[LoadedResource], problems: _Problems) -> EngineSettings:
    """From Processor `attributes` and Stream `options` (with or without `ddl.`); all must agree."""
    sources: list[tuple[Mapping[str, str], tuple[str, ...], LoadedResource]] = []
    for item in loaded:
        if isinstance(item.resource, Processor):
            sources.append((item.resource.spec.attributes, ("spec", "attributes"), item))
        elif isinstance(item.resource, Stream) and item.resource.spec.data_schema_context:
            sources.append((item.resource.spec.data_schema_context.options, ("spec", "dataSchemaContext", "options"), item))

    parsers: dict[str, Callable[[str], object]] = {
        "idle_timeout_ms": _idle_timeout_ms,
        "max_future_skew_ms": _duration_or_off,
        "quiet_advance": parse_boolean,
        "max_watermark_drift_ms": _duration_or_off,
    }
    values: dict[str, object] = {}
    for setting, keys in SETTING_KEYS.items():
        chosen: tuple[object, str, LoadedResource] | None = None
        for mapping, base, item in sources:
            for key in (*keys, *(DDL_PREFIX + k for k in keys)):
                if key not in mapping:
                    continue
                report = problems.at(item.origin)
                try:
                    value = parsers[setting](mapping[key])
                except ValueError as exc:
                    report(str(exc), (*base, key))
                    continue
                if chosen is not None and chosen[0] != value:
                    other = chosen[2]
                    report(
                        f"{mapping[key]!r} conflicts with {chosen[1]!r} set in {other.kind}/{other.name}"
                        f" (document {other.origin.document})",
                        (*base, key),
                    )
                    continue
                chosen = chosen or (value, mapping[key], item)
        if chosen is not None:
            values[setting] = chosen[0]
    return EngineSettings(**values)  # type: ignore[arg-type]



def locate_query(loaded: Sequence[LoadedResource], raw_query: str) -> tuple[Origin, FieldPath] | None:
    """Where a query came from, so that errors found later (SQL planning) point at its line."""
    for item in of_kind(list(loaded), Processor):
        spec = item.resource.spec  # type: ignore[union-attr]
        texts = [(q, ("spec", "inlineQuery", i)) for i, q in enumerate(spec.inline_query or [])]
        if isinstance(spec.inputs, QueryInputs):
            texts += [(q, ("spec", "inputs", "query", i)) for i, q in enumerate(spec.inputs.query)]
        for text, path in texts:
            if text == raw_query:
                return item.origin, path
    return None
