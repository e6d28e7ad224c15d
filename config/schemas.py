"""A Stream's `dataSchemaContext` -> schema fields, event-time attribute,
primary key and Avro schema.

The Streaming Runtime accepts several spellings of one schema (meta-schema,
inline Avro as JSON or YAML, an Avro schema in a registry subject, inline
SQL `CREATE TABLE`, or none: `schemaless`) and turns them all into Avro; so
do we, so that the decoders and the SQL planner see one representation.
Metadata fields (the Kafka record timestamp, a Kafka header) and
processing-time attributes are columns, but not part of the Avro record.

A schema in a registry subject (`inline: {type: avro-confluent, schema:
http://host:8081/subjects/<subject>/versions/latest}`) is only recorded
here: resolving never does network I/O. The start-up preflight fetches it
(`connectors.schema_registry`) and `complete_schema` fills in the columns.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

import fastavro
import yaml
from sqlglot import exp

from config.pipeline import SchemaField, StreamSpec, TimeAttribute
from config.resources import LOGICAL_TYPES, PRIMITIVE_TYPES, PROCTIME, DataSchemaContext, SchemaFieldModel
from config.sql.errors import SqlError
from config.sql.parser import MetadataColumn, WatermarkDefinition, parse_statement, to_sql
from config.timeexpr import parse_watermark

Report = Callable[[str, Sequence[str | int]], None]
CONTEXT = ("spec", "dataSchemaContext")
INLINE_SCHEMA = (*CONTEXT, "inline", "schema")
KAFKA_TIMESTAMP = "timestamp"
HEADER_PREFIX = "header."
_SUBJECT_PATH = re.compile(r"^(?P<base>.*)/subjects/(?P<subject>[^/]+)/versions/(?P<version>latest|\d+)/?$")


@dataclass(frozen=True)
class ResolvedSchema:
    namespace: str | None = None
    name: str | None = None
    fields: tuple[SchemaField, ...] = ()
    avro_schema_json: str | None = None
    time_attribute: TimeAttribute | None = None
    primary_key: tuple[str, ...] = ()
    registry_subject_url: str | None = None

    @property
    def has_record(self) -> bool:
        """Whether the stream's values have a schema (known now, or fetched at start)."""
        return self.registry_subject_url is not None or any(f.in_record for f in self.fields)


@dataclass
class _Declared:
    """What the schema text itself declares besides the columns (an inline
    SQL `CREATE TABLE` can carry watermarks and a primary key)."""

    watermarks: list[tuple[str, str]] = field(default_factory=list)  # (column, expression text)
    primary_key: list[str] = field(default_factory=list)


def resolve_schema(
    context: DataSchemaContext | None,
    report: Report,
    topic: str | None = None,
    registry_url: str | None = None,
) -> ResolvedSchema:
    """All of a Stream's schema; problems go to `report(message, field_path)`.

    `topic` and `registry_url` complete an avro-confluent subject written as
    `default` (the Streaming Runtime's `<registry>/subjects/<topic>-value/versions/latest`).
    """
    if context is None:
        return ResolvedSchema()
    forms = (("schema", context.schema_), ("inline", context.inline), ("schemaless", context.schemaless))
    given = [key for key, value in forms if value is not None]
    if len(given) > 1:
        report(f"give only one of schema, inline or schemaless (found {', '.join(given)})", CONTEXT)
        return ResolvedSchema()
    namespace: str | None = None
    name: str | None = None
    fields: list[SchemaField] = []
    record_json: str | None = None
    subject_url: str | None = None
    declared = _Declared()
    inline = context.inline
    if context.schemaless is not None:
        pass  # the payload is opaque bytes; time attributes and metadata columns still apply
    elif context.schema_ is not None:
        record = context.schema_
        namespace, name = record.namespace or None, record.name
        fields = [_meta_field(f, report, (*CONTEXT, "schema", "fields", i)) for i, f in enumerate(record.fields)]
    elif inline is not None and inline.type == "sql":
        namespace, name, fields, declared = _sql_schema(inline.schema_, report)
    elif inline is not None and inline.type == "avro-confluent" and _names_a_subject(inline.schema_):
        subject_url = _subject_url(inline.schema_, topic, registry_url, report)
    elif inline is not None:
        namespace, name, fields, record_json = _avro_schema(inline.schema_, report, INLINE_SCHEMA)
    else:
        report("one of schema, inline or schemaless is required", CONTEXT)
        return ResolvedSchema()

    fields += [
        _meta_field(f, report, (*CONTEXT, "metadataFields", i), metadata_default=True)
        for i, f in enumerate(context.metadata_fields)
    ]
    fields = _with_time_attribute_columns(context, fields)
    _check_unique(fields, report)
    pending = subject_url is not None
    time_attribute = _event_time(context, fields, declared, report, pending)
    primary_key = _primary_key(context, declared, fields, report, pending)
    if record_json is None and any(f.in_record for f in fields):
        record_json = _record_json(namespace, name or "Record", fields, report)
    return ResolvedSchema(namespace, name, tuple(fields), record_json, time_attribute, primary_key, subject_url)


def complete_schema(stream: StreamSpec, schema_text: str) -> tuple[StreamSpec, list[str]]:
    """A stream whose record schema was fetched from its registry subject,
    with the record's columns in front of its metadata and time-attribute
    columns; and the problems found (the time attribute, key and primary key
    must name columns that exist)."""
    problems: list[str] = []

    def report(message: str, path: Sequence[str | int] = ()) -> None:
        problems.append(message)

    namespace, name, record, record_json = _avro_schema(schema_text, report, INLINE_SCHEMA, fetched=True)
    fields = [*record, *(f for f in stream.fields if not f.in_record)]
    _check_unique(fields, report)
    names = {f.name: f for f in fields}
    attribute = stream.time_attribute
    if attribute is not None and attribute.source == "field":
        column = names.get(attribute.column)
        if column is None:
            report(f"time attribute {attribute.column!r} is not a field of the fetched schema")
        elif not column.is_timestamp:
            report(f"event-time attribute {attribute.column!r} must be a timestamp (long_timestamp-millis), not {column.type}")
    for what, columns in (("primary key column", stream.primary_key), ("key field", stream.key_fields)):
        for column_name in columns:
            if column_name not in names:
                report(f"{what} {column_name!r} is not a field of the fetched schema")
    completed = replace(
        stream,
        fields=tuple(fields),
        avro_schema_json=record_json,
        schema_namespace=namespace,
        schema_name=name,
    )
    return completed, problems


def subject_of(url: str) -> tuple[str, str, str] | None:
    """(registry base URL, subject, version) of a subject version URL."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    match = _SUBJECT_PATH.match(parts.path)
    if match is None:
        return None
    base = f"{parts.scheme}://{parts.netloc}{match['base']}"
    return base, match["subject"], match["version"]


# --- meta-schema ---------------------------------------------------------------


def _meta_field(
    model: SchemaFieldModel, report: Report, path: tuple[str | int, ...], metadata_default: bool = False
) -> SchemaField:
    """`long_timestamp-millis` is type long + logical type timestamp-millis (SR's shortcut)."""
    base, _, shortcut = model.type.partition("_")
    base = base.lower()
    if base == PROCTIME:
        return SchemaField(model.name, "long", "timestamp-millis", optional=model.optional, proctime=True)
    logical = model.logical_type or shortcut or None
    if model.logical_type and shortcut and model.logical_type != shortcut:
        report(f"type {model.type!r} says logical type {shortcut!r} but logicalType says {model.logical_type!r}", (*path, "logicalType"))
    if logical and LOGICAL_TYPES[logical] != base:
        report(f"logical type {logical!r} needs type {LOGICAL_TYPES[logical]!r}, not {base!r}", (*path, "type"))
    metadata_from = model.metadata.from_ if model.metadata else (model.name if metadata_default else None)
    return SchemaField(model.name, base, logical, optional=model.optional, metadata_from=metadata_from)


def _record_json(namespace: str | None, name: str, fields: Sequence[SchemaField], report: Report) -> str | None:
    """The Avro record of the in-record fields, as compact JSON with sorted keys."""
    record: dict[str, Any] = {"type": "record", "name": name, "fields": [_avro_field(f) for f in fields if f.in_record]}
    if namespace:
        record["namespace"] = namespace
    try:
        fastavro.parse_schema(record)
    except Exception as exc:  # fastavro raises several exception types for bad schemas
        report(f"the schema is not a valid Avro record: {exc}", CONTEXT)
        return None
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def _avro_field(field: SchemaField) -> dict[str, Any]:
    avro_type: Any = {"type": field.type, "logicalType": field.logical_type} if field.logical_type else field.type
    if field.optional:
        return {"name": field.name, "type": ["null", avro_type], "default": None}
    return {"name": field.name, "type": avro_type}


# --- inline Avro ---------------------------------------------------------------


def _names_a_subject(text: str) -> bool:
    """An avro-confluent `schema` is a registry subject URL (or `default`),
    unless it is the Avro schema itself."""
    value = text.strip()
    return not value or value.lower() == "default" or "://" in value.split("\n", 1)[0]


def _subject_url(text: str, topic: str | None, registry_url: str | None, report: Report) -> str | None:
    value = text.strip()
    if not value or value.lower() == "default":
        if not registry_url or not topic:
            report(
                "an avro-confluent schema written as 'default' needs a schema registry"
                " (spec.dataSchemaContext.schemaRegistryUri); or give the subject version URL,"
                " http://<registry>/subjects/<subject>/versions/latest",
                INLINE_SCHEMA,
            )
            return None
        return f"{registry_url.rstrip('/')}/subjects/{topic}-value/versions/latest"
    if subject_of(value) is None:
        report(
            f"{value!r} is not a schema registry subject version URL"
            " (expected http://<registry>/subjects/<subject>/versions/<latest or number>)",
            INLINE_SCHEMA,
        )
        return None
    return value


def _avro_schema(
    text: str, report: Report, path: tuple[str | int, ...], fetched: bool = False
) -> tuple[str | None, str | None, list[SchemaField], str | None]:
    """Avro schema text (JSON, or YAML) -> fields; the user's schema is kept as
    the record schema, because its union order is what the writer used."""
    origin = "the fetched Avro schema" if fetched else "inline Avro schema"
    if not text.strip():
        report(f"{origin} is empty", path)
        return None, None, [], None
    if text.strip().lower().startswith(("http://", "https://")):
        report("a schema registry URL is read with inline type avro-confluent, not avro", path)
        return None, None, [], None
    try:
        schema = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        report(f"{origin} is not valid JSON or YAML: {exc}", path)
        return None, None, [], None
    if not isinstance(schema, dict) or schema.get("type") != "record" or not isinstance(schema.get("fields"), list):
        report(f"{origin} must be a record (type: record, name, fields)", path)
        return None, None, [], None
    try:
        fastavro.parse_schema(dict(schema))
    except Exception as exc:  # fastavro raises several exception types for bad schemas
        report(f"invalid Avro schema: {exc}", path)
        return None, None, [], None
    fields = []
    for entry in schema["fields"]:
        parsed = _avro_record_field(entry)
        if parsed is None:
            report(f"field {entry.get('name')!r}: Avro type {json.dumps(entry.get('type'))} is not supported"
                   " (primitives, logical types and nullable unions are)", path)
        else:
            fields.append(parsed)
    record_json = json.dumps(schema, sort_keys=True, separators=(",", ":"))
    return schema.get("namespace"), schema.get("name"), fields, record_json


def _avro_record_field(entry: dict[str, Any]) -> SchemaField | None:
    avro_type = entry.get("type")
    optional = False
    if isinstance(avro_type, list):
        branches = [b for b in avro_type if b != "null"]
        if len(branches) != 1 or len(avro_type) != 2:
            return None
        optional, avro_type = True, branches[0]
    logical = None
    if isinstance(avro_type, dict):
        logical = avro_type.get("logicalType")
        avro_type = avro_type.get("type")
        if logical is not None and LOGICAL_TYPES.get(logical) != avro_type:
            return None
    if avro_type not in PRIMITIVE_TYPES:
        return None
    return SchemaField(entry["name"], avro_type, logical, optional=optional)


# --- inline SQL ----------------------------------------------------------------

_SQL_TYPES: dict[str, tuple[str, str | None]] = {
    "BIGINT": ("long", None),
    "INT": ("int", None),
    "SMALLINT": ("int", None),
    "TINYINT": ("int", None),
    "TEXT": ("string", None),
    "VARCHAR": ("string", None),
    "CHAR": ("string", None),
    "DOUBLE": ("double", None),
    "FLOAT": ("float", None),
    "BOOLEAN": ("boolean", None),
    "BINARY": ("bytes", None),
    "VARBINARY": ("bytes", None),
    "DATE": ("int", "date"),
}
_TIMESTAMP_PRECISIONS = {3: ("long", "timestamp-millis"), 6: ("long", "timestamp-micros")}


def _sql_schema(text: str, report: Report) -> tuple[str | None, str | None, list[SchemaField], _Declared]:
    """Flink's `CREATE TABLE name (col TYPE [NOT NULL] [METADATA [FROM 'key'] [VIRTUAL]], ...,
    [col AS PROCTIME()], [WATERMARK FOR col AS col - INTERVAL 'n' SECOND], [PRIMARY KEY (...) NOT ENFORCED])`.
    A column without NOT NULL is optional."""
    declared = _Declared()
    try:
        statement = parse_statement(text)
    except SqlError as exc:
        report(f"inline SQL schema does not parse: {exc}", INLINE_SCHEMA)
        return None, None, [], declared
    if not isinstance(statement, exp.Create) or not isinstance(statement.this, exp.Schema):
        report("inline SQL schema must be a CREATE TABLE statement with a column list", INLINE_SCHEMA)
        return None, None, [], declared
    fields: list[SchemaField] = []
    for item in statement.this.expressions:
        if isinstance(item, exp.ColumnDef):
            column = _sql_column(item, report)
            if column is not None:
                fields.append(column)
        elif isinstance(item, WatermarkDefinition):
            declared.watermarks.append((item.this.name, to_sql(item.args["expression"])))
        elif isinstance(item, exp.PrimaryKey):
            if not any(str(o).upper() == "NOT ENFORCED" for o in item.args.get("options") or []):
                report(
                    "PRIMARY KEY must be declared NOT ENFORCED, as Flink requires: the data is not"
                    " the engine's to check (PRIMARY KEY (...) NOT ENFORCED)",
                    INLINE_SCHEMA,
                )
            declared.primary_key += [part.name for part in item.expressions]
        else:
            report(f"unsupported CREATE TABLE clause {to_sql(item)}", INLINE_SCHEMA)
    return None, statement.this.this.name, fields, declared


def _sql_column(column: exp.ColumnDef, report: Report) -> SchemaField | None:
    constraints = [c.args.get("kind") for c in column.args.get("constraints") or []]
    computed = next((c for c in constraints if isinstance(c, exp.ComputedColumnConstraint)), None)
    if computed is not None:
        expression = computed.this
        if isinstance(expression, exp.Anonymous) and expression.name.upper() == "PROCTIME" and not expression.expressions:
            return SchemaField(column.name, "long", "timestamp-millis", proctime=True)
        report(
            f"column {column.name!r}: computed column {to_sql(expression)} is not supported (only AS PROCTIME() is)",
            INLINE_SCHEMA,
        )
        return None
    kind = column.args.get("kind")
    mapped = _sql_column_type(kind)
    if mapped is None:
        report(f"column {column.name!r}: SQL type {to_sql(kind) if kind else '?'} is not supported", INLINE_SCHEMA)
        return None
    not_null = any(isinstance(c, exp.NotNullColumnConstraint) for c in constraints)
    metadata = next((c for c in constraints if isinstance(c, MetadataColumn)), None)
    metadata_from = None
    if metadata is not None:
        key = metadata.this
        metadata_from = key.name if isinstance(key, exp.Literal) else column.name
    return SchemaField(column.name, mapped[0], mapped[1], optional=not not_null, metadata_from=metadata_from)


def _sql_column_type(kind: exp.DataType | None) -> tuple[str, str | None] | None:
    if kind is None:
        return None
    name = kind.this.name
    if name in ("TIMESTAMP", "TIMESTAMPLTZ"):
        # A bare TIMESTAMP is milliseconds, as the Streaming Runtime's converter read it.
        precision = int(kind.expressions[0].name) if kind.expressions else 3
        return _TIMESTAMP_PRECISIONS.get(precision)
    if name == "USERDEFINED" and str(kind.args.get("kind", "")).upper() in ("BYTES", "STRING"):
        return ("bytes", None) if str(kind.args["kind"]).upper() == "BYTES" else ("string", None)
    return _SQL_TYPES.get(name)


# --- time attributes -----------------------------------------------------------


def _with_time_attribute_columns(context: DataSchemaContext, fields: list[SchemaField]) -> list[SchemaField]:
    """`timeAttributes` entries that name no column declare one: `header.<name>`
    reads event time from a Kafka header (`header.timestamp`: the Kafka record
    timestamp), as the Streaming Runtime's processor did; any other name without
    a watermark is a processing-time column."""
    names = {f.name for f in fields}
    extra: list[SchemaField] = []
    for attribute in context.time_attributes:
        if attribute.name in names:
            continue
        names.add(attribute.name)
        if attribute.name.startswith(HEADER_PREFIX) and len(attribute.name) > len(HEADER_PREFIX):
            header = attribute.name[len(HEADER_PREFIX):]
            source = KAFKA_TIMESTAMP if header == KAFKA_TIMESTAMP else attribute.name
            extra.append(SchemaField(attribute.name, "long", "timestamp-millis", metadata_from=source))
        elif attribute.watermark is None:
            extra.append(SchemaField(attribute.name, "long", "timestamp-millis", proctime=True))
    return fields + extra


def _check_unique(fields: Sequence[SchemaField], report: Report) -> None:
    seen: set[str] = set()
    for field_ in fields:
        if field_.name in seen:
            report(f"field {field_.name!r} is defined more than once", CONTEXT)
        seen.add(field_.name)


def _event_time(
    context: DataSchemaContext,
    fields: Sequence[SchemaField],
    declared_in_text: _Declared,
    report: Report,
    pending: bool,
) -> TimeAttribute | None:
    """The one event-time attribute: a field with a watermark (in the schema,
    `metadataFields`, `timeAttributes` or a `WATERMARK FOR`), or a `header.*`
    time attribute (without a watermark: no out-of-orderness, as the
    Streaming Runtime's processor had)."""
    declared: list[tuple[str, str, tuple[str | int, ...]]] = []
    if context.schema_ is not None:
        declared += [
            (f.name, f.watermark, (*CONTEXT, "schema", "fields", i, "watermark"))
            for i, f in enumerate(context.schema_.fields)
            if f.watermark is not None
        ]
    declared += [(column, text, INLINE_SCHEMA) for column, text in declared_in_text.watermarks]
    declared += [
        (f.name, f.watermark, (*CONTEXT, "metadataFields", i, "watermark"))
        for i, f in enumerate(context.metadata_fields)
        if f.watermark is not None
    ]
    for i, a in enumerate(context.time_attributes):
        if a.watermark is not None:
            declared.append((a.name, a.watermark, (*CONTEXT, "timeAttributes", i, "watermark")))
        elif a.name.startswith(HEADER_PREFIX):
            declared.append((a.name, f"`{a.name}`", (*CONTEXT, "timeAttributes", i, "name")))
    if not declared:
        return None
    if len({name for name, _, _ in declared}) > 1:
        names = ", ".join(sorted({name for name, _, _ in declared}))
        report(f"more than one event-time attribute has a watermark ({names}); one is supported", declared[1][2])
        return None
    column, text, path = declared[0]
    try:
        watermark = parse_watermark(text)
    except ValueError as exc:
        report(str(exc), path)
        return None
    if watermark.column != column:
        report(f"the watermark expression uses column {watermark.column!r} but is declared on {column!r}", path)
        return None
    field_ = next((f for f in fields if f.name == column), None)
    if field_ is None:
        if pending:  # a record column of the registry's schema: checked when it is fetched
            return TimeAttribute(column, watermark.delay_ms, "field", text)
        report(f"time attribute {column!r} is not a field of the schema", path)
        return None
    if field_.proctime or not field_.is_timestamp:
        kind = "proctime" if field_.proctime else field_.type + (f"_{field_.logical_type}" if field_.logical_type else "")
        report(f"event-time attribute {column!r} must be a timestamp (long_timestamp-millis), not {kind}", path)
        return None
    origin = field_.metadata_from
    if origin is None:
        return TimeAttribute(column, watermark.delay_ms, "field", text)
    if origin == KAFKA_TIMESTAMP:
        return TimeAttribute(column, watermark.delay_ms, "kafka-timestamp", text)
    if origin.startswith(HEADER_PREFIX) and len(origin) > len(HEADER_PREFIX):
        return TimeAttribute(column, watermark.delay_ms, "header", text, header=origin[len(HEADER_PREFIX):])
    report(
        f"event time can come from a record field, the Kafka timestamp (metadata from: timestamp)"
        f" or a Kafka header (from: header.<name>), not from {origin!r}",
        path,
    )
    return None


# --- primary key ---------------------------------------------------------------


def _primary_key(
    context: DataSchemaContext, declared: _Declared, fields: Sequence[SchemaField], report: Report, pending: bool
) -> tuple[str, ...]:
    """`primaryKey[]` (or the CREATE TABLE's PRIMARY KEY): columns that exist, each once."""
    path = (*CONTEXT, "primaryKey")
    key = list(context.primary_key)
    if declared.primary_key:
        if key and key != declared.primary_key:
            report(
                f"primaryKey {key} differs from the inline schema's PRIMARY KEY {declared.primary_key}; give one",
                path,
            )
            return ()
        key, path = declared.primary_key, INLINE_SCHEMA
    names = {f.name: f for f in fields}
    for i, column in enumerate(key):
        if key.index(column) != i:
            report(f"primary key column {column!r} is listed twice", path)
        elif column not in names and not pending:
            report(f"primary key column {column!r} is not a field of the schema", (*path, i) if path[-1] == "primaryKey" else path)
        elif column in names and names[column].proctime:
            report(f"primary key column {column!r} is a processing-time attribute", path)
    return tuple(dict.fromkeys(key))
