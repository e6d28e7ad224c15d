"""Encoders: Confluent-framed Avro for producers and tests, and the JSON key
and value of result records exactly as the seed's Flink job wrote them
(compact JSON, columns in SELECT order, timestamps via `format_timestamp_ms`)."""

from __future__ import annotations

import io
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol

import fastavro
import orjson

from engine.serde.timestamps import format_timestamp_ms

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
def _timestamp_names(columns: tuple[TypedColumn, ...]) -> tuple[tuple[str, bool], ...]:
    return tuple((c.name, is_timestamp_type(c.type)) for c in columns)


def _json_ready(value: Any, is_timestamp: bool) -> Any:
    return format_timestamp_ms(value) if is_timestamp and value is not None else value


def encode_json_key(key_fields: Sequence[str], row: Mapping[str, Any], timestamps: Collection[str] = ()) -> bytes:
    """`{"error_code":"C001_ABORTED"}`: the key fields of `row`, in order."""
    return orjson.dumps({name: _json_ready(row[name], name in timestamps) for name in key_fields})


def encode_json_value(columns: Sequence[TypedColumn], row: Mapping[str, Any]) -> bytes:
    """All `columns` of `row` as one compact JSON object, timestamps formatted."""
    return orjson.dumps({name: _json_ready(row[name], ts) for name, ts in _timestamp_names(tuple(columns))})
