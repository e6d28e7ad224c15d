"""Fetching the Avro schema of a registry subject version, at start.

A Stream may keep its schema in a Confluent schema registry
(`dataSchemaContext.inline: {type: avro-confluent, schema:
http://host:8081/subjects/songs-value/versions/latest}`), as the
Streaming Runtime's operator read it. Resolving the pipeline does no I/O, so
the start-up preflight calls `fetch_registry_schemas` and hands the texts
to `config.resolve.with_registry_schemas`:

    pipeline = with_registry_schemas(pipeline, fetch_registry_schemas(pipeline, timeout_s=10))

One GET of the registry's REST API per subject (confluent-kafka's
`SchemaRegistryClient`, bounded by the timeout, no retries: the preflight
decides whether to try again). An unreachable registry, an unknown subject
or version, or a schema that is not Avro is a `SchemaFetchError` naming the
stream and the URL (without its credentials).
"""

from __future__ import annotations

from typing import Any, Mapping

from config.pipeline import Pipeline, public_url
from config.schemas import subject_of


class SchemaFetchError(RuntimeError):
    """A registry subject's schema could not be fetched; the message says why."""


def fetch_registry_schemas(pipeline: Pipeline, timeout_s: float = 10.0) -> dict[str, str]:
    """Stream name -> Avro schema text, for every stream whose schema is a registry subject."""
    fetched: dict[str, str] = {}
    for name, stream in pipeline.streams.items():
        if stream.schema_pending and stream.schema_registry_subject_url:
            try:
                fetched[name] = fetch_subject_schema(stream.schema_registry_subject_url, timeout_s,
                                                     stream.schema_registry_settings)
            except SchemaFetchError as exc:
                raise SchemaFetchError(f"Stream {name}: {exc}") from None
    return fetched


def fetch_subject_schema(url: str, timeout_s: float = 10.0, client_config: Mapping[str, Any] | None = None) -> str:
    """The schema text of `http://<registry>/subjects/<subject>/versions/<latest|n>`."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    shown = public_url(url)
    parts = subject_of(url)
    if parts is None:
        raise SchemaFetchError(f"{shown} is not a subject version URL (http://<registry>/subjects/<subject>/versions/latest)")
    base, subject, version = parts
    if client_config and "basic.auth.user.info" in client_config:
        base = public_url(base)  # the credentials are in the settings (config.connections), not twice
    try:
        with SchemaRegistryClient({"url": base, "timeout": timeout_s, "max.retries": 0, **(client_config or {})}) as client:
            registered = (
                client.get_latest_version(subject) if version == "latest" else client.get_version(subject, int(version))
            )
    except SchemaRegistryError as exc:
        if exc.http_status_code == 404:
            what = "subject" if exc.error_code == 40401 else "version" if exc.error_code == 40402 else "subject or version"
            raise SchemaFetchError(f"{shown}: the registry has no such {what} ({exc.error_message})") from None
        if exc.http_status_code in (401, 403):
            raise SchemaFetchError(f"{shown}: the registry {'refused the credentials' if exc.http_status_code == 401 else 'denied access'}"
                                   f" (HTTP {exc.http_status_code}): check basic-auth.user-info") from None
        raise SchemaFetchError(f"{shown}: the registry answered HTTP {exc.http_status_code}: {exc.error_message}") from None
    except Exception as exc:  # transport errors (httpx): the registry is down or unreachable, or TLS failed
        from connectors.tls import tls_failure

        if (problem := tls_failure(exc)) is not None:
            raise SchemaFetchError(f"the schema registry at {public_url(base)}: {problem}") from None
        reason = str(exc) or type(exc).__name__
        raise SchemaFetchError(
            f"the schema registry at {public_url(base)} did not answer within {timeout_s:g} s or is unreachable ({reason})"
        ) from None
    schema = registered.schema
    schema_type = getattr(schema, "schema_type", None) or "AVRO"
    if schema_type.upper() != "AVRO":
        raise SchemaFetchError(f"{shown}: the subject holds a {schema_type} schema; a Stream reads Avro")
    return schema.schema_str
