"""The `value.avro-confluent.schema-id` option: which Confluent schema ids a
stream without a schema registry reads with its own schema.

Parsed once by `config.resolve` (a mistake is a problem with its field path,
found by `validate`) and again by the Avro decoder, with the same function.
"""

from __future__ import annotations

SCHEMA_ID_OPTION = "value.avro-confluent.schema-id"


def parse_schema_ids(text: str | None) -> frozenset[int] | None:
    """The ids of the option (comma separated), or None when it is absent (any id accepted)."""
    if not text or not text.strip():
        return None
    try:
        ids = frozenset(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"{SCHEMA_ID_OPTION} must be a comma-separated list of schema ids, got {text!r}") from None
    if any(not 0 <= i < 2**32 for i in ids):
        raise ValueError(f"{SCHEMA_ID_OPTION}: a schema id is a number from 0 to {2**32 - 1}, got {text!r}")
    return ids
