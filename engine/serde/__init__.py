"""Batch decoders and encoders for the stream value formats.

`make_decoder(stream)` gives a decoder whose `decode(values)` turns the raw
values of a batch into a `DecodedBatch`: the good rows (as a polars
DataFrame or Python lists, whichever the consumer asks for) with their
input positions, and one `(position, reason)` per bad record. Reasons start
with a stable code: `truncated`, `bad-magic-byte`, `unknown-schema-id`,
`avro-decode-error`, `json-decode-error`, `not-an-object`, `missing-field`,
`wrong-type`, `null-value` (a JSON value nested deeper than 127 levels is a
`json-decode-error`). Bad input never raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from config.pipeline import StreamSpec
from engine.serde.avro_decoder import AvroBatchDecoder, TimeCheck
from engine.serde.avro_schema import RecordSchema, parse_record_schema
from engine.serde.batch import BatchDecoder, DecodedBatch, DecodeError
from engine.serde.encoders import (
    confluent_header,
    encode_avro,
    encode_confluent_avro,
    encode_json_key,
    encode_json_value,
)
from engine.serde.registry import (
    SCHEMA_ID_OPTION,
    SchemaRegistryConfigError,
    SchemaRegistryUnavailable,
    parse_schema_ids,
    registry_client,
)
from engine.serde.timestamps import format_timestamp, format_timestamp_ms

__all__ = [
    "BatchDecoder",
    "DecodeError",
    "DecodedBatch",
    "SchemaRegistryConfigError",
    "SchemaRegistryUnavailable",
    "confluent_header",
    "encode_avro",
    "encode_confluent_avro",
    "encode_json_key",
    "encode_json_value",
    "event_time_divisor",
    "format_timestamp",
    "format_timestamp_ms",
    "make_decoder",
    "reader_schema",
]


def reader_schema(stream: StreamSpec) -> RecordSchema:
    """The stream's record schema: its Avro schema, else one built from its fields."""
    if stream.avro_schema_json:
        return parse_record_schema(stream.avro_schema_json)
    fields: list[dict[str, Any]] = []
    for f in stream.fields:
        if not f.in_record:
            continue
        avro_type: Any = {"type": f.type, "logicalType": f.logical_type} if f.logical_type else f.type
        fields.append({"name": f.name, "type": ["null", avro_type] if f.optional else avro_type})
    return parse_record_schema(
        {
            "type": "record",
            "name": stream.schema_name or "Record",
            **({"namespace": stream.schema_namespace} if stream.schema_namespace else {}),
            "fields": fields,
        }
    )


def event_time_divisor(stream: StreamSpec) -> int:
    """What the event-time column's values are floor-divided by to give epoch
    millis: 1000 for `timestamp-micros`, 1 for millis and Kafka timestamps."""
    ta = stream.time_attribute
    if ta is None or ta.source != "field":
        return 1
    field = reader_schema(stream).field(ta.column)
    return (field.millis_divisor if field is not None else None) or 1


def make_decoder(
    stream: StreamSpec,
    columns: Sequence[str] | None = None,
    *,
    registry: Any | None = None,
) -> BatchDecoder:
    """A batch decoder for the values of `stream`, returning `columns`
    (default: every field of the record). The event-time field, when it is a
    record field, is always checked (present, not null).

    Every timestamp column, the event time's included, comes out as an int in
    the unit its logical type declares (`timestamp-micros`: microseconds),
    whatever the format, so that a TIMESTAMP(6) column keeps its precision to
    the output; `event_time_divisor` turns the event time into epoch millis.

    `registry` is a ready `SchemaRegistryClient` (tests pass an in-process
    mock); by default one is made from `stream.schema_registry_url`.
    """
    schema = reader_schema(stream)
    names = tuple(columns) if columns is not None else schema.field_names
    unknown = [n for n in names if n not in schema.field_names]
    if unknown:
        raise ValueError(f"stream {stream.name!r} has no record field {', '.join(map(repr, unknown))}")
    time_column = None
    ta = stream.time_attribute
    if ta is not None and ta.source == "field" and ta.column in schema.field_names:
        time_column = ta.column

    if stream.value_format == "json":
        # msgspec and the native decoder load only for JSON streams
        from engine.serde.json_decoder import JsonBatchDecoder

        return JsonBatchDecoder(schema, names, time_column)
    if stream.value_format not in ("avro", "avro-confluent"):
        raise ValueError(f"no batch decoder for value format {stream.value_format!r}")

    time = TimeCheck(time_column) if time_column is not None else None
    if stream.value_format == "avro":
        return AvroBatchDecoder(schema, names, time, confluent=False)
    if registry is None and stream.schema_registry_url:
        registry = registry_client(stream.schema_registry_url, stream.schema_registry_settings)
    accepted = None if registry is not None else parse_schema_ids(stream.options.get(SCHEMA_ID_OPTION))
    return AvroBatchDecoder(schema, names, time, confluent=True, registry=registry, accepted_ids=accepted)
