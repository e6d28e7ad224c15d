"""Avro record schemas as the decoders need them.

Logical types are stripped before decoding, so timestamps stay raw ints (no
datetime objects to build and take apart again) and both decoding paths give
the same Python values. The batch path is kept to flat records of primitive
fields (what a Stream's schema always is), where polars and fastavro agree on
every value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
TIMESTAMP_DIVISORS = {"timestamp-millis": 1, "timestamp-micros": 1000, "timestamp-nanos": 1_000_000}


@dataclass(frozen=True)
class AvroField:
    """A field of a flat record: a primitive, or a primitive that may be null."""

    name: str
    type: str
    logical_type: str | None
    nullable: bool

    @property
    def millis_divisor(self) -> int | None:
        """For timestamp fields, what turns the raw value into epoch millis."""
        return TIMESTAMP_DIVISORS.get(self.logical_type or "")


@dataclass(frozen=True)
class RecordSchema:
    """One Avro record schema: the original, the stripped copy, and (when
    flat) its fields."""

    original: dict[str, Any]
    stripped: dict[str, Any]
    fields: tuple[AvroField, ...] | None  # None: nested or complex types, no batch path

    @property
    def flat(self) -> bool:
        return self.fields is not None

    @property
    def stripped_json(self) -> str:
        return json.dumps(self.stripped, separators=(",", ":"))

    def field(self, name: str) -> AvroField | None:
        return next((f for f in self.fields or () if f.name == name), None)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f["name"] for f in self.original["fields"])


def parse_record_schema(schema: str | dict[str, Any]) -> RecordSchema:
    """Read an Avro record schema given as JSON text or a parsed dict."""
    original = json.loads(schema) if isinstance(schema, str) else schema
    if not isinstance(original, dict) or original.get("type") != "record":
        raise ValueError("the value schema must be an Avro record")
    stripped = strip_logical_types(original)
    fields = []
    for raw, plain in zip(original["fields"], stripped["fields"]):
        layout = _flat_field(raw["name"], raw["type"], plain["type"])
        if layout is None:
            return RecordSchema(original, stripped, None)
        fields.append(layout)
    return RecordSchema(original, stripped, tuple(fields))


def strip_logical_types(schema: Any) -> Any:
    """A copy of `schema` with every logical type removed (values stay raw)."""
    if isinstance(schema, list):
        return [strip_logical_types(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strip_logical_types(v) for k, v in schema.items() if k not in ("logicalType", "precision", "scale")}
    if "logicalType" in schema and set(out) == {"type"} and out["type"] in PRIMITIVES:
        return out["type"]
    return out


def _logical_type(schema: Any) -> str | None:
    if isinstance(schema, dict):
        return schema.get("logicalType")
    if isinstance(schema, list):
        return next((_logical_type(s) for s in schema if _logical_type(s)), None)
    return None


def _flat_field(name: str, raw: Any, plain: Any) -> AvroField | None:
    if isinstance(plain, str) and plain in PRIMITIVES and plain != "null":
        return AvroField(name, plain, _logical_type(raw), nullable=False)
    if isinstance(plain, list) and len(plain) == 2 and "null" in plain:
        other = plain[1] if plain[0] == "null" else plain[0]
        if isinstance(other, str) and other in PRIMITIVES and other != "null":
            return AvroField(name, other, _logical_type(raw), nullable=True)
    return None
