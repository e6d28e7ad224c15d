"""Writer schemas by Confluent schema id.

With a schema registry the id names the writer schema, fetched once and
cached. Without one, the stream's own schema is the writer schema for the
ids the stream accepts: those listed in the `value.avro-confluent.schema-id`
option (comma separated), or any id when the option is absent.

Garbage (a zero byte and four random ones) looks like a framed record with
an id nobody registered, so what the registry is asked is bounded:

- the decoders ask about each distinct id of a batch once, never per record;
- both caches are bounded: found schemas (least recently used go first) and
  ids the registry does not know (404), which are forgotten after ten
  minutes, so that an id registered later is found;
- ids not in either cache are looked up at a bounded rate (a burst of 20,
  then 10 a second); the ids of a batch are asked in order of how many
  records carry them, so a real new schema comes before lone garbage. An
  id over that budget is a dead letter
  (`unknown-schema-id: N (not looked up: ...)`): a flood of garbage must not
  stall the pipeline behind thousands of lookups.

A registry that does not answer (down, a timeout, a 5xx) raises
`SchemaRegistryUnavailable`: the batch is read again later, nothing is
dead-lettered and nothing cached. Only a 404 makes the records dead letters.

The client carries the stream's registry credentials and TLS settings
(`config.connections.registry_settings`). A registry that refuses them (401,
403) or a TLS handshake that fails is a `SchemaRegistryConfigError`: the
process stops with one line saying so, since no retry and no dead letter
can mend it. `check_registry` asks once at start, so a wrong password stops
the dataflow before it reads anything; a lookup that meets the same later
(credentials revoked while running) stops it too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cachetools import LRUCache, TTLCache

from config.schema_ids import SCHEMA_ID_OPTION, parse_schema_ids
from runtime.logs import FatalError
from runtime.redact import redact_text, redact_url

__all__ = ["SCHEMA_ID_OPTION", "LookupLimits", "SchemaRegistryConfigError", "SchemaRegistryUnavailable", "WriterSchemas",
           "check_registry", "parse_schema_ids",
           "registry_client"]

log = logging.getLogger(__name__)

T = TypeVar("T")

class SchemaRegistryUnavailable(RuntimeError):
    """The registry could not answer: an infrastructure failure, not bad data."""


class SchemaRegistryConfigError(FatalError):
    """The registry refused the credentials or the access, or TLS to it failed: a configuration to fix."""


AUTH_STATUS = {401: "refused the credentials (401 Unauthorized)", 403: "denied access (403 Forbidden)"}
NUMERIC_SETTINGS = ("timeout",)
PROBE_ID = 0  # registries number schemas from 1: asking for 0 checks the credentials and finds nothing


def registry_client(url: str, settings: Mapping[str, str] | None = None) -> Any:
    """A Confluent registry client with the stream's auth and TLS settings;
    `mock://...` gives an in-process registry."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    conf: dict[str, Any] = {"url": url}
    for key, value in (settings or {}).items():
        conf[key] = float(value) if key in NUMERIC_SETTINGS else value
    try:
        return SchemaRegistryClient.new_client(conf)
    except (ValueError, TypeError, OSError) as exc:  # unreadable CA or client certificate, malformed settings
        raise SchemaRegistryConfigError(redact_text(f"schema registry at {redact_url(url)}: {exc}")) from None


def config_error_of(exc: BaseException, url: str) -> SchemaRegistryConfigError | None:
    """The configuration error a failed registry call stands for: a 401/403, or a TLS handshake that failed."""
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    from connectors.tls import tls_failure

    where = f"schema registry at {redact_url(url)}"
    if isinstance(exc, SchemaRegistryError) and exc.http_status_code in AUTH_STATUS:
        return SchemaRegistryConfigError(
            f"{where} {AUTH_STATUS[exc.http_status_code]}: check basic-auth.user-info "
            "(value.avro-confluent.basic-auth.user-info, or SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO)")
    problem = tls_failure(exc)
    return SchemaRegistryConfigError(f"{where}: {problem}") if problem else None


def check_registry(url: str, settings: Mapping[str, str] | None = None) -> bool:
    """Ask the registry once (a schema id no registry assigns): raises
    SchemaRegistryConfigError when it refuses the credentials or TLS fails;
    False when it cannot be reached (lookups retry later), True when it answered."""
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    client = registry_client(url, settings)
    try:
        client.get_schema(PROBE_ID)
    except SchemaRegistryError as exc:
        error = config_error_of(exc, url)
        if error is not None:
            raise error from None
        return exc.http_status_code < 500
    except Exception as exc:  # noqa: BLE001 - transport: down, or a TLS failure
        error = config_error_of(exc, url)
        if error is not None:
            raise error from None
        log.warning("schema registry at %s does not answer (%s); lookups will retry", redact_url(url), redact_text(str(exc)))
        return False
    return True


@dataclass(frozen=True)
class LookupLimits:
    """How much the registry may be asked, and how much is remembered."""

    found: int = 256  # writer schemas kept (each a prepared decoder)
    missing: int = 4096  # ids the registry does not know, kept ...
    missing_ttl_s: float = 600.0  # ... this long
    per_second: float = 10.0  # lookups of ids in neither cache, after ...
    burst: int = 20  # ... this many at once


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
        limits: LookupLimits = LookupLimits(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._prepare = prepare
        self._client = client
        self._accepted = accepted_ids
        self._limits = limits
        self._clock = clock
        self._found: LRUCache[int, T] = LRUCache(limits.found)
        self._missing: TTLCache[int, str] = TTLCache(limits.missing, limits.missing_ttl_s, timer=clock)
        self._tokens = float(limits.burst)
        self._refilled_at = clock()
        self._last_skip_log = -float("inf")
        self._inline: T | None = None
        self._inline_json = inline_schema_json

    def lookup(self, schema_id: int) -> T | str:
        """The prepared decoder of `schema_id`, or a reason string."""
        return self.lookup_many({schema_id: 1})[schema_id]

    def lookup_many(self, counts: Mapping[int, int]) -> dict[int, T | str]:
        """The decoder or reason of each id, given how many records carry it:
        ids the caches do not answer are asked most-carried first, within the budget."""
        if self._client is None:
            return {schema_id: self._without_registry(schema_id) for schema_id in counts}
        out: dict[int, T | str] = {}
        unknown: list[int] = []
        for schema_id in counts:
            cached = self._found.get(schema_id)
            if cached is None:
                cached = self._missing.get(schema_id)
            if cached is None:
                unknown.append(schema_id)
            else:
                out[schema_id] = cached
        skipped = 0
        for schema_id in sorted(unknown, key=lambda i: -counts[i]):
            if not self._take_token():
                skipped += 1
                out[schema_id] = (f"unknown-schema-id: {schema_id} (not looked up: more than {self._limits.burst}"
                                  f" new schema ids at once, {self._limits.per_second:g} a second after that)")
                continue
            found = self._fetch(schema_id)
            if isinstance(found, str):
                self._missing[schema_id] = found
            else:
                self._found[schema_id] = found
            out[schema_id] = found
        if skipped:
            self._log_skipped(skipped)
        return out

    def _take_token(self) -> bool:
        now = self._clock()
        limits = self._limits
        self._tokens = min(float(limits.burst), self._tokens + (now - self._refilled_at) * limits.per_second)
        self._refilled_at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def _log_skipped(self, skipped: int) -> None:
        now = self._clock()
        if now - self._last_skip_log >= 10:
            self._last_skip_log = now
            log.warning("%d schema id(s) of a batch were not looked up in the schema registry (more than %d new ids"
                        " at once): their records are dead letters; garbage values are the usual cause", skipped,
                        self._limits.burst)

    def _without_registry(self, schema_id: int) -> T | str:
        if self._accepted is not None and schema_id not in self._accepted:
            return f"unknown-schema-id: {schema_id} (accepted: {', '.join(map(str, sorted(self._accepted)))})"
        if self._inline is None:
            self._inline = self._prepare(self._inline_json)
        return self._inline

    def _raise_if_config_error(self, exc: BaseException) -> None:
        error = config_error_of(exc, _registry_url(self._client))
        if error is not None:
            raise error from None

    def _fetch(self, schema_id: int) -> T | str:
        """One registry lookup: the prepared decoder, or the reason the id is unusable."""
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            schema = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return f"unknown-schema-id: {schema_id} (not in the schema registry)"
            self._raise_if_config_error(exc)
            raise SchemaRegistryUnavailable(f"schema registry lookup of id {schema_id} failed: {exc}") from exc
        except Exception as exc:  # transport errors: the registry is down, the data may be fine
            self._raise_if_config_error(exc)
            raise SchemaRegistryUnavailable(f"schema registry lookup of id {schema_id} failed: {exc}") from exc
        if (schema.schema_type or "AVRO").upper() != "AVRO":
            return f"unknown-schema-id: {schema_id} is a {schema.schema_type} schema, not Avro"
        try:
            return self._prepare(schema.schema_str)
        except Exception as exc:  # noqa: BLE001 - a broken schema is a property of the id, not a crash
            return f"unknown-schema-id: {schema_id} has an unusable schema ({exc})"


def _registry_url(client: Any) -> str:
    rest = getattr(client, "_rest_client", None)
    urls = getattr(rest, "base_urls", None)
    return ",".join(urls) if urls else "?"
