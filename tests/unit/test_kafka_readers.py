"""Which reader a partition gets. No broker: creating a consumer does not connect."""

from __future__ import annotations

import logging

import pytest

from connectors import kafka_readers
from connectors.kafka_readers import ConfluentReader, NativeReader, open_reader

BASE = {"bootstrap.servers": "127.0.0.1:1", "group.id": "g", "log_level": "0"}


def test_the_native_reader_is_built_and_chosen_by_default() -> None:
    reader = open_reader(BASE, "t", 0)
    try:
        assert isinstance(reader, NativeReader)
    finally:
        reader.close()


def test_iot_native_kafka_0_picks_confluent_kafka() -> None:
    from runtime.settings import RunOptions

    assert RunOptions.from_env({"IOT_NATIVE_KAFKA": "0"}).native_kafka is False
    reader = open_reader(BASE, "t", 0, native=False)
    try:
        assert isinstance(reader, ConfluentReader)
    finally:
        reader.close()


@pytest.mark.parametrize("security", [
    {"security.protocol": "SSL", "ssl.ca.location": "/etc/ssl/certs/ca-certificates.crt"},
    {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "u", "sasl.password": "p"},
    {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "u", "sasl.password": "p"},
    {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", "sasl.username": "u", "sasl.password": "p"},
], ids=["ssl", "scram-512", "scram-256", "plain"])
def test_tls_and_sasl_are_read_natively(security) -> None:
    reader = open_reader({**BASE, **security}, "t", 0)
    try:
        assert isinstance(reader, NativeReader)
    finally:
        reader.close()


def test_settings_the_native_build_lacks_fall_back_to_confluent_kafka(caplog) -> None:
    """OAUTHBEARER with OIDC: confluent-kafka's librdkafka has libcurl, the native one is built without it."""
    oidc = {**BASE, "security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER", "sasl.oauthbearer.method": "oidc",
            "sasl.oauthbearer.client.id": "c", "sasl.oauthbearer.client.secret": "s",
            "sasl.oauthbearer.token.endpoint.url": "https://127.0.0.1:1/token"}
    with pytest.raises(ValueError, match="sasl.oauthbearer.method"):
        NativeReader(oidc, "t", 0)
    with caplog.at_level(logging.INFO, logger="connectors.kafka_readers"):
        reader = open_reader(oidc, "t", 3)
    try:
        assert isinstance(reader, ConfluentReader)
        assert "t/3 is read with confluent-kafka" in caplog.text and "sasl.oauthbearer.method" in caplog.text
    finally:
        reader.close()


def test_over_tls_without_a_ca_the_native_reader_probes_the_system_store() -> None:
    assert kafka_readers.native_config({**BASE, "security.protocol": "sasl_ssl"})["ssl.ca.location"] == "probe"
    given = {**BASE, "security.protocol": "SSL", "ssl.ca.pem": "-----BEGIN CERTIFICATE-----"}
    assert kafka_readers.native_config(given) == given
    assert kafka_readers.native_config(BASE) == BASE


def test_a_property_neither_client_knows_is_still_an_error() -> None:
    with pytest.raises(Exception, match="no.such.property"):
        open_reader({**BASE, "no.such.property": "1"}, "t", 0)
