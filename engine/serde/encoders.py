"""Encoders: Confluent-framed Avro for producers and tests, and the JSON key
and value of result records exactly as the seed's Flink job wrote them
(compact JSON, columns in SELECT order, timestamps via `format_timestamp` in
their column's precision: a `timestamp-micros` column's microseconds show).
A timestamp outside years 0000..9999 cannot be printed as one and is written
as its number, not an error at the window's firing."""

from __future__ import annotations

import io
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol

import fastavro
import orjson

from engine.serde.timestamps import digits_of, format_timestamp

MAGIC_BYTE = b"\x00"


class TypedColumn(Protocol):
    """What the JSON encoder needs of a column: `config.sql.plan.OutputColumn` has it."""

    name: str
    type: str  # Avro type; timestamps written like `long_timestamp-millis`


@lru_cache(maxsize=64)
def _parsed(schema_json: str) -> Any:
    return fastavro.parse_schema(json.loads(schema_json))


def confluent_header(schema_id: int) -> bytes:
    """Magic byte 0 and the 4-byte big-endian schema id."""
    return MAGIC_BYTE + schema_id.to_bytes(4, "big")


def encode_avro(schema_json: str, records: Iterable[Mapping[str, Any]]) -> list[bytes]:
    """Plain Avro binary bodies (no framing), one per record."""
    schema = _parsed(schema_json)
    out = []
    for record in records:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, record)
        out.append(buf.getvalue())
    return out


def encode_confluent_avro(schema_json: str, schema_id: int, records: Iterable[Mapping[str, Any]]) -> list[bytes]:
    """Avro bodies with the Confluent Schema Registry framing, one per record."""
    schema = _parsed(schema_json)
    header = confluent_header(schema_id)
    out = []
    for record in records:
        buf = io.BytesIO()
        buf.write(header)
        fastavro.schemaless_writer(buf, schema, record)
        out.append(buf.getvalue())
    return out


def is_timestamp_type(type_name: str) -> bool:
    return "timestamp" in type_name


@lru_cache(maxsize=64)
def _timestamp_digits(columns: tuple[TypedColumn, ...]) -> tuple[tuple[str, int | None], ...]:
    """(name, fraction digits, None when not a timestamp) of each column."""
    return tuple((c.name, digits_of(c.type) if is_timestamp_type(c.type) else None) for c in columns)


def _json_ready(value: Any, digits: int | None) -> Any:
    if digits is None or value is None:
        return value
    try:
        return format_timestamp(value, digits)
    except ValueError:  # beyond what a TIMESTAMP holds: the number itself
        return value


def encode_json_key(
    key_fields: Sequence[str], row: Mapping[str, Any], timestamps: Collection[str] | Mapping[str, str] = ()
) -> bytes:
    """`{"error_code":"C001_ABORTED"}`: the key fields of `row`, in order.
    `timestamps` names the timestamp fields (milliseconds), or maps them to
    their column types (`long_timestamp-micros`)."""
    def digits(name: str) -> int | None:
        if name not in timestamps:
            return None
        return digits_of(timestamps[name]) if isinstance(timestamps, Mapping) else 3

    return orjson.dumps({name: _json_ready(row[name], digits(name)) for name in key_fields})


def encode_json_value(columns: Sequence[TypedColumn], row: Mapping[str, Any]) -> bytes:
    """All `columns` of `row` as one compact JSON object, timestamps formatted."""
    return orjson.dumps({name: _json_ready(row[name], digits) for name, digits in _timestamp_digits(tuple(columns))})
