"""Which Kafka record metadata a Stream's column may read (`metadata: {from: ...}`).

Flink's Kafka connector offers a record's timestamp, topic, partition and
offset; the Streaming Runtime added `header.<name>`, one header's value. A
query that reads another kind is refused when it is planned
(`config.sql.compile`); `engine.metadata` reads these.
"""

from __future__ import annotations

from config.pipeline import SchemaField
HEADER_PREFIX = "header."  # as config.schemas spells a header time attribute

RECORD_METADATA = ("timestamp", "topic", "partition", "offset")
HEADER_TYPES = ("int", "long", "string", "bytes")
"""What a header's value may be read as (a timestamp is a long: epoch milliseconds)."""


def header_of(field: SchemaField) -> str | None:
    """The header a column reads, None when it reads none."""
    origin = field.metadata_from or ""
    return origin[len(HEADER_PREFIX):] if origin.startswith(HEADER_PREFIX) and len(origin) > len(HEADER_PREFIX) else None


def readable_origin(field: SchemaField) -> bool:
    """Whether a non-record column can be read: processing time, record metadata, a header of a supported type."""
    if field.proctime:
        return True
    if header_of(field) is not None:
        return field.type in HEADER_TYPES
    return field.metadata_from in RECORD_METADATA
