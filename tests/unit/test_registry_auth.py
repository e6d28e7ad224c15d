"""The schema registry client with basic auth and TLS, against a real HTTP
server started here in the registry's REST shape (`GET /schemas/ids/{id}`,
basic auth required, optionally over TLS with a CA made for the test).

Refused credentials and failed TLS are `SchemaRegistryConfigError` (the
process stops, in one line), never `SchemaRegistryUnavailable` (retried) and
never a dead letter."""

from __future__ import annotations

import io
import json
import ssl
from pathlib import Path
from typing import Iterator

import fastavro
import pytest

from config.pipeline import SchemaField, StreamSpec, frozen_map
from engine.serde import make_decoder
from engine.serde.registry import SchemaRegistryConfigError, SchemaRegistryUnavailable, check_registry, registry_client
from tests.support.ports import free_port
from tests.support.registry import RegistryState, running_registry
from tests.support.tls import TestCA

USER, PASSWORD = "reader", "r3gistry-secret"
SCHEMA = {"type": "record", "name": "E", "fields": [{"name": "code", "type": "string"}]}
SCHEMA_ID = 7


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    with running_registry(RegistryState(USER, PASSWORD, {SCHEMA_ID: json.dumps(SCHEMA)})) as url:
        yield url


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("registry-pki"))


@pytest.fixture(scope="module")
def tls_registry(ca: TestCA) -> Iterator[str]:
    issued = ca.issue("registry", server=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.cert, issued.key)
    with running_registry(RegistryState(USER, PASSWORD, {SCHEMA_ID: json.dumps(SCHEMA)}), context) as url:
        yield url


def good(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"basic.auth.user.info": f"{USER}:{PASSWORD}", **(extra or {})}


def framed(value: dict) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(SCHEMA), value)
    return b"\x00" + SCHEMA_ID.to_bytes(4, "big") + out.getvalue()


def stream(url: str, settings: dict[str, str]) -> StreamSpec:
    return StreamSpec(name="events", topic="events", protocol="kafka", servers="unused:9092", value_format="avro-confluent",
                      fields=(SchemaField("code", "string"),), avro_schema_json=json.dumps(SCHEMA),
                      schema_registry_url=url, schema_registry_settings=frozen_map(settings))


def test_credentials_revoked_after_the_start_up_probe_stop_the_first_lookup() -> None:
    state = RegistryState(USER, PASSWORD, {SCHEMA_ID: json.dumps(SCHEMA)}, revoke_after_probe=True)
    with running_registry(state) as url:
        assert check_registry(url, good()) is True
        with pytest.raises(SchemaRegistryConfigError, match="refused the credentials"):
            make_decoder(stream(url, good())).decode([framed({"code": "C1"})])
    assert state.asked == ["/schemas/ids/0", f"/schemas/ids/{SCHEMA_ID}"]


def test_the_right_credentials_fetch_the_writer_schema(registry: str) -> None:
    assert check_registry(registry, good()) is True
    decoded = make_decoder(stream(registry, good())).decode([framed({"code": "C1"}), framed({"code": "C2"})])
    assert decoded.errors == [] and list(decoded.frame["code"]) == ["C1", "C2"]


@pytest.mark.parametrize("settings", [{}, {"basic.auth.user.info": f"{USER}:wrong-password-3"}], ids=["none", "wrong"])
def test_refused_credentials_are_a_configuration_error_at_start_and_on_lookup(registry: str, settings) -> None:
    with pytest.raises(SchemaRegistryConfigError) as at_start:
        check_registry(registry, settings)
    assert str(at_start.value).startswith(f"schema registry at {registry} refused the credentials (401 Unauthorized)")
    decoder = make_decoder(stream(registry, settings))
    with pytest.raises(SchemaRegistryConfigError) as on_lookup:  # not Unavailable (retried), not a dead letter
        decoder.decode([framed({"code": "C1"})])
    assert not isinstance(on_lookup.value, SchemaRegistryUnavailable)
    assert "wrong-password-3" not in str(at_start.value) + str(on_lookup.value)


def test_a_registry_that_is_down_is_not_a_configuration_error() -> None:
    down = f"http://127.0.0.1:{free_port()}"
    assert check_registry(down, good()) is False
    with pytest.raises(SchemaRegistryUnavailable):
        make_decoder(stream(down, good())).decode([framed({"code": "C1"})])


def test_over_tls_with_the_registrys_ca(tls_registry: str, ca: TestCA) -> None:
    settings = good({"ssl.ca.location": str(ca.pem)})
    assert check_registry(tls_registry, settings) is True
    assert list(make_decoder(stream(tls_registry, settings)).decode([framed({"code": "C3"})]).frame["code"]) == ["C3"]


def test_an_untrusted_registry_certificate_is_a_configuration_error(tls_registry: str, tmp_path: Path) -> None:
    other = TestCA(tmp_path, "other CA")
    with pytest.raises(SchemaRegistryConfigError, match="the server's certificate is not trusted"):
        check_registry(tls_registry, good({"ssl.ca.location": str(other.pem)}))


def test_unusable_tls_files_are_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(SchemaRegistryConfigError, match="schema registry at https://r:8081"):
        registry_client("https://r:8081", {"ssl.ca.location": str(tmp_path / "missing.pem")})
