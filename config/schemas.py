"""A Stream's `dataSchemaContext` -> schema fields, event-time attribute and Avro schema.

The Streaming Runtime accepts three spellings of one schema (meta-schema,
inline Avro, inline SQL `CREATE TABLE`) and turns them all into Avro; so do
we, so that the decoders and the SQL planner see one representation.
Metadata fields (e.g. the Kafka record timestamp) and processing-time
attributes are columns, but not part of the Avro record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import fastavro
import sqlglot
import yaml
from sqlglot import exp

from config.pipeline import SchemaField, TimeAttribute
from config.resources import LOGICAL_TYPES, PRIMITIVE_TYPES, PROCTIME, DataSchemaContext, SchemaFieldModel
from config.timeexpr import parse_watermark

Report = Callable[[str, Sequence[str | int]], None]
CONTEXT = ("spec", "dataSchemaContext")


@dataclass(frozen=True)
class ResolvedSchema:
    namespace: str | None = None
    name: str | None = None
    fields: tuple[SchemaField, ...] = ()
    avro_schema_json: str | None = None
    time_attribute: TimeAttribute | None = None


def resolve_schema(context: DataSchemaContext | None, report: Report) -> ResolvedSchema:
    """All of a Stream's schema; problems go to `report(message, field_path)`."""
    if context is None:
        return ResolvedSchema()
    forms = (("schema", context.schema_), ("inline", context.inline), ("schemaless", context.schemaless))
    given = [key for key, value in forms if value is not None]
    if len(given) > 1:
        report(f"give only one of schema, inline or schemaless (found {', '.join(given)})", CONTEXT)
        return ResolvedSchema()
    if context.schemaless is not None:
        return ResolvedSchema()
    namespace: str | None
    name: str | None
    if context.schema_ is not None:
        record = context.schema_
        namespace, name = record.namespace or None, record.name
        fields = [_meta_field(f, report, (*CONTEXT, "schema", "fields", i)) for i, f in enumerate(record.fields)]
        record_json = None
    elif context.inline is not None and context.inline.type == "sql":
        namespace, name, fields = _sql_schema(context.inline.schema_, report)
        record_json = None
    elif context.inline is not None:
        namespace, name, fields, record_json = _avro_schema(context.inline.schema_, report)
    else:
        report("one of schema, inline or schemaless is required", CONTEXT)
        return ResolvedSchema()

    fields += [
        _meta_field(f, report, (*CONTEXT, "metadataFields", i), metadata_default=True)
        for i, f in enumerate(context.metadata_fields)
    ]
    fields = _with_proctime_attributes(context, fields)
    _check_unique(fields, report)
    time_attribute = _event_time(context, fields, report)
    if record_json is None:
        record_json = _record_json(namespace, name or "Record", fields, report)
    return ResolvedSchema(namespace, name, tuple(fields), record_json, time_attribute)


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


def _avro_schema(text: str, report: Report) -> tuple[str | None, str | None, list[SchemaField], str | None]:
    """Inline Avro text (JSON, or YAML) -> fields; the user's schema is kept as the record schema,
    because its union order is what the writer used."""
    path = (*CONTEXT, "inline", "schema")
    if not text.strip() or text.strip().lower().startswith(("http://", "https://")):
        report("the Avro schema must be written inline; fetching it from a schema registry at startup is not supported", path)
        return None, None, [], None
    try:
        schema = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        report(f"inline Avro schema is not valid JSON: {exc}", path)
        return None, None, [], None
    if not isinstance(schema, dict) or schema.get("type") != "record" or not isinstance(schema.get("fields"), list):
        report("inline Avro schema must be a record (type: record, name, fields)", path)
        return None, None, [], None
    try:
        fastavro.parse_schema(dict(schema))
    except Exception as exc:  # fastavro raises several exception types for bad schemas
        report(f"invalid Avro schema: {exc}", path)
        return None, None, [], None
    fields = []
    for entry in schema["fields"]:
        field = _avro_record_field(entry)
        if field is None:
            report(f"field {entry.get('name')!r}: Avro type {json.dumps(entry.get('type'))} is not supported"
                   " (primitives, logical types and nullable unions are)", path)
        else:
            fields.append(field)
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


def _sql_schema(text: str, report: Report) -> tuple[str | None, str | None, list[SchemaField]]:
    """`CREATE TABLE name (col TYPE [NOT NULL], ...)`: a column without NOT NULL is optional."""
    path = (*CONTEXT, "inline", "schema")
    try:
        statement = sqlglot.parse_one(text, read="bigquery")  # backticks, STRING, BYTES, TIMESTAMP(p)
    except sqlglot.errors.ParseError as exc:
        report(f"inline SQL schema does not parse: {str(exc).splitlines()[0]}", path)
        return None, None, []
    if not isinstance(statement, exp.Create) or not isinstance(statement.this, exp.Schema):
        report("inline SQL schema must be a CREATE TABLE statement with a column list", path)
        return None, None, []
    fields = []
    for column in statement.this.expressions:
        if not isinstance(column, exp.ColumnDef):
            continue
        kind = column.args.get("kind")
        mapped = _sql_column_type(kind)
        if mapped is None:
            report(f"column {column.name!r}: SQL type {kind.sql() if kind else '?'} is not supported", path)
            continue
        not_null = any(isinstance(c.args.get("kind"), exp.NotNullColumnConstraint) for c in column.args.get("constraints") or [])
        fields.append(SchemaField(column.name, mapped[0], mapped[1], optional=not not_null))
    return None, statement.this.this.name, fields


def _sql_column_type(kind: exp.DataType | None) -> tuple[str, str | None] | None:
    if kind is None:
        return None
    name = kind.this.name
    if name.startswith("TIMESTAMP"):
        precision = int(kind.expressions[0].sql()) if kind.expressions else 3
        return {3: ("long", "timestamp-millis"), 6: ("long", "timestamp-micros")}.get(precision)
    return _SQL_TYPES.get(name)


# --- time attributes -----------------------------------------------------------


def _with_proctime_attributes(context: DataSchemaContext, fields: list[SchemaField]) -> list[SchemaField]:
    """A `timeAttributes` entry without a watermark declares a processing-time column."""
    names = {f.name for f in fields}
    extra = [
        SchemaField(a.name, "long", "timestamp-millis", proctime=True)
        for a in context.time_attributes
        if a.watermark is None and a.name not in names
    ]
    return fields + extra


def _check_unique(fields: Sequence[SchemaField], report: Report) -> None:
    seen: set[str] = set()
    for field in fields:
        if field.name in seen:
            report(f"field {field.name!r} is defined more than once", CONTEXT)
        seen.add(field.name)


def _event_time(context: DataSchemaContext, fields: Sequence[SchemaField], report: Report) -> TimeAttribute | None:
    """The one field with a watermark, from the schema or from `timeAttributes`."""
    declared: list[tuple[str, str, tuple[str | int, ...]]] = []
    if context.schema_ is not None:
        declared += [
            (f.name, f.watermark, (*CONTEXT, "schema", "fields", i, "watermark"))
            for i, f in enumerate(context.schema_.fields)
            if f.watermark is not None
        ]
    declared += [
        (f.name, f.watermark, (*CONTEXT, "metadataFields", i, "watermark"))
        for i, f in enumerate(context.metadata_fields)
        if f.watermark is not None
    ]
    declared += [
        (a.name, a.watermark, (*CONTEXT, "timeAttributes", i, "watermark"))
        for i, a in enumerate(context.time_attributes)
        if a.watermark is not None
    ]
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
    field = next((f for f in fields if f.name == column), None)
    if field is None:
        report(f"time attribute {column!r} is not a field of the schema", path)
        return None
    if field.proctime or not field.is_timestamp:
        kind = "proctime" if field.proctime else field.type + (f"_{field.logical_type}" if field.logical_type else "")
        report(f"event-time attribute {column!r} must be a timestamp (long_timestamp-millis), not {kind}", path)
        return None
    if field.metadata_from not in (None, "timestamp"):
        report(f"event time can come from a record field or the Kafka timestamp, not from {field.metadata_from!r}", path)
        return None
    source = "kafka-timestamp" if field.metadata_from == "timestamp" else "field"
    return TimeAttribute(column, watermark.delay_ms, source, text)
