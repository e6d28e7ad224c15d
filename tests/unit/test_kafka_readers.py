"""Which reader a partition gets. No broker: creating a consumer does not connect."""

from __future__ import annotations

import logging

import pytest

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


def test_settings_the_native_build_lacks_fall_back_to_confluent_kafka(caplog) -> None:
    """TLS: confluent-kafka's librdkafka has OpenSSL, the native one is built without it."""
    tls = {**BASE, "security.protocol": "SSL"}
    with pytest.raises(ValueError, match="security.protocol"):
        NativeReader(tls, "t", 0)
    with caplog.at_level(logging.INFO, logger="connectors.kafka_readers"):
        reader = open_reader(tls, "t", 3)
    try:
        assert isinstance(reader, ConfluentReader)
        assert "t/3 is read with confluent-kafka" in caplog.text and "security.protocol" in caplog.text
    finally:
        reader.close()


def test_a_property_neither_client_knows_is_still_an_error() -> None:
    with pytest.raises(Exception, match="no.such.property"):
        open_reader({**BASE, "no.such.property": "1"}, "t", 0)
