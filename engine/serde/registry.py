"""Writer schemas by Confluent schema id.

With a schema registry the id names the writer schema, fetched once and
cached (an unknown id is cached too, so a flood of bad records costs one
lookup). Without one, the stream's own schema is the writer schema for the
ids the stream accepts: those listed in the `value.avro-confluent.schema-id`
option (comma separated), or any id when the option is absent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

SCHEMA_ID_OPTION = "value.avro-confluent.schema-id"


class SchemaRegistryUnavailable(RuntimeError):
    """The registry could not answer: an infrastructure failure, not bad data."""


def parse_schema_ids(text: str | None) -> frozenset[int] | None:
    """The ids of the option, or None when it is absent (any id accepted)."""
    if not text or not text.strip():
        return None
    try:
        return frozenset(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"{SCHEMA_ID_OPTION} must be a comma-separated list of integers, got {text!r}") from None


def registry_client(url: str) -> Any:
    """A Confluent registry client; `mock://...` gives an in-process registry."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    return SchemaRegistryClient.new_client({"url": url})


class WriterSchemas(Generic[T]):
    """Resolves a schema id to a prepared decoder (`T`) or to an error reason.

    `prepare(schema_json)` turns a writer schema into whatever the caller
    decodes with; it runs once per id.
    """

    def __init__(
        self,
        prepare: Callable[[str], T],
        *,
        inline_schema_json: str,
        client: Any | None = None,
        accepted_ids: frozenset[int] | None = None,
    ) -> None:
        self._prepare = prepare
        self._client = client
        self._accepted = accepted_ids
        self._cache: dict[int, T | str] = {}
        self._inline: T | None = None
        self._inline_json = inline_schema_json

    def lookup(self, schema_id: int) -> T | str:
        """The prepared decoder of `schema_id`, or a reason string."""
        found = self._cache.get(schema_id)
        if found is None:
            found = self._cache[schema_id] = self._resolve(schema_id)
        return found

    def _resolve(self, schema_id: int) -> T | str:
        if self._client is None:
            if self._accepted is not None and schema_id not in self._accepted:
                return f"unknown-schema-id: {schema_id} (accepted: {', '.join(map(str, sorted(self._accepted)))})"
            if self._inline is None:
                self._inline = self._prepare(self._inline_json)
            return self._inline
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            schema = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return f"unknown-schema-id: {schema_id} (not in the schema registry)"
            raise SchemaRegistryUnavailable(f"schema registry lookup of id {schema_id} failed: {exc}") from exc
        except Exception as exc:  # transport errors: the registry is down, the data may be fine
            raise SchemaRegistryUnavailable(f"schema registry lookup of id {schema_id} failed: {exc}") from exc
        if (schema.schema_type or "AVRO").upper() != "AVRO":
            return f"unknown-schema-id: {schema_id} is a {schema.schema_type} schema, not Avro"
        try:
            return self._prepare(schema.schema_str)
        except Exception as exc:  # noqa: BLE001 - a broken schema is a property of the id, not a crash
            return f"unknown-schema-id: {schema_id} has an unusable schema ({exc})"
