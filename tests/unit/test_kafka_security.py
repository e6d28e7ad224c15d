"""Kafka security settings: Java's names and forms in a Stream, a
ClusterStream or the environment, as librdkafka takes them, and a clear
problem naming the field for what librdkafka cannot do. No broker."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent, indent

import pytest

from config import ConfigError, load_pipeline
from config.kafka_security import parse_jaas, translate
from tests.unit.test_config_resolve import COUNT_QUERY, EVENTS_SCHEMA, HEADER, fsql, stream, write

SCRAM_JAAS = 'org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="s3cr\\"et";'
PLAIN_JAAS = "org.apache.kafka.common.security.plain.PlainLoginModule required username='bob' password=\"pw\";"


def with_properties(properties: dict[str, str], cluster: str | None = None) -> list[str]:
    options = "".join(f"  ddl.properties.{k}: {json.dumps(v)}\n" for k, v in properties.items())
    context = dedent(EVENTS_SCHEMA) + ("options:\n" + options if options else "")
    extra = f"  storage:\n    clusterStream: {cluster}\n" if cluster else ""
    return [stream("events", modes="[read]", context=context, extra=extra), stream("counts"), fsql(COUNT_QUERY)]


def cluster_stream(name: str, attributes: dict[str, str]) -> str:
    lines = "".join(f"{k}: {json.dumps(v)}\n" for k, v in attributes.items())
    return HEADER + (f"kind: ClusterStream\nmetadata:\n  name: {name}\nspec:\n  name: {name}\n  storage:\n"
                     f"    server:\n      url: broker:9093\n      protocol: kafka\n    attributes:\n" + indent(lines, "      "))


def events_properties(tmp_path: Path, documents: list[str], env: dict[str, str] | None = None) -> dict[str, str]:
    pipeline = load_pipeline(write(tmp_path, *documents), env=env or {})
    return dict(pipeline.stream("events").kafka_properties)


def problem_texts(tmp_path: Path, documents: list[str], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_pipeline(write(tmp_path, *documents), env=env or {})
    return [str(p) for p in caught.value.problems]


def test_scram_jaas_config_becomes_librdkafka_credentials(tmp_path):
    props = events_properties(tmp_path, with_properties({
        "security.protocol": "sasl_ssl", "sasl.mechanism": "SCRAM-SHA-256", "sasl.jaas.config": SCRAM_JAAS,
        "ssl.truststore.location": "/certs/ca.pem", "ssl.truststore.type": "PEM", "group.id": "kept",
    }))
    assert props == {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "alice",
                     "sasl.password": 's3cr"et', "ssl.ca.location": "/certs/ca.pem", "group.id": "kept"}


def test_plain_jaas_config_sets_its_mechanism():
    assert translate({"sasl.jaas.config": PLAIN_JAAS.replace("'bob'", "bob")}, _fail) == {
        "sasl.mechanism": "PLAIN", "sasl.username": "bob", "sasl.password": "pw"}


def test_jaas_parsing_takes_quotes_escapes_and_bare_values():
    assert parse_jaas('a.b.C required x="1 2" y=three z="q\\"uote";') == ("a.b.C", {"x": "1 2", "y": "three", "z": 'q"uote'})
    assert parse_jaas("not a jaas line") is None


def test_oauthbearer_client_credentials_become_oidc():
    jaas = ('org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required '
            'clientId="app" clientSecret="shh" scope="kafka";')
    out = translate({"sasl.mechanism": "OAUTHBEARER", "sasl.jaas.config": jaas,
                     "sasl.login.callback.handler.class":
                         "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler",
                     "sasl.oauthbearer.token.endpoint.url": "https://idp/token"}, _fail)
    assert out == {"sasl.mechanism": "OAUTHBEARER", "sasl.oauthbearer.method": "oidc", "sasl.oauthbearer.client.id": "app",
                   "sasl.oauthbearer.client.secret": "shh", "sasl.oauthbearer.scope": "kafka",
                   "sasl.oauthbearer.token.endpoint.url": "https://idp/token"}


def test_java_key_stores_become_client_certificate_settings():
    pem = translate({"ssl.keystore.type": "PEM", "ssl.keystore.location": "/c/client.pem", "ssl.key.password": "k"}, _fail)
    assert pem == {"ssl.certificate.location": "/c/client.pem", "ssl.key.location": "/c/client.pem", "ssl.key.password": "k"}
    p12 = translate({"ssl.keystore.location": "/c/client.p12", "ssl.keystore.password": "p"}, _fail)
    assert p12 == {"ssl.keystore.location": "/c/client.p12", "ssl.keystore.password": "p"}
    inline = translate({"ssl.keystore.key": "KEY", "ssl.keystore.certificate.chain": "CHAIN", "ssl.truststore.certificates": "CA"}, _fail)
    assert inline == {"ssl.key.pem": "KEY", "ssl.certificate.pem": "CHAIN", "ssl.ca.pem": "CA"}


def test_jvm_only_settings_are_dropped_and_an_empty_endpoint_algorithm_turns_the_check_off():
    out = translate({"security.protocol": "SSL", "ssl.protocol": "TLSv1.3", "ssl.enabled.protocols": "TLSv1.2,TLSv1.3",
                     "ssl.endpoint.identification.algorithm": ""}, _fail)
    assert out == {"security.protocol": "SSL", "ssl.endpoint.identification.algorithm": "none"}


@pytest.mark.parametrize("properties, field, words", [
    ({"ssl.truststore.location": "/c/truststore.jks", "ssl.truststore.password": "x"}, "ssl.truststore.location", "JKS trust store"),
    ({"ssl.truststore.location": "/c/ca", "ssl.truststore.type": "PKCS12"}, "ssl.truststore.location", "PKCS12 trust store"),
    ({"ssl.keystore.location": "/c/k.jks"}, "ssl.keystore.location", "JKS key store"),
    ({"ssl.keystore.location": "/c/k.pem", "ssl.keystore.password": "x"}, "ssl.keystore.password", "takes no ssl.keystore.password"),
    ({"sasl.mechanism": "GSSAPI"}, "sasl.mechanism", "Kerberos (GSSAPI) is not supported"),
    ({"sasl.jaas.config": 'com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true keyTab="/k";'},
     "sasl.jaas.config", "Kerberos (GSSAPI) is not supported"),
    ({"sasl.jaas.config": SCRAM_JAAS}, "sasl.jaas.config", "needs sasl.mechanism SCRAM-SHA-256 or SCRAM-SHA-512"),
    ({"sasl.mechanism": "SCRAM-SHA-512", "sasl.jaas.config": PLAIN_JAAS}, "sasl.jaas.config", "is for PLAIN, but sasl.mechanism"),
    ({"sasl.jaas.config": PLAIN_JAAS, "sasl.username": "x"}, "sasl.jaas.config", "given twice"),
    ({"sasl.jaas.config": "no module here"}, "sasl.jaas.config", "cannot read sasl.jaas.config"),
    ({"sasl.client.callback.handler.class": "com.acme.Handler"}, "sasl.client.callback.handler.class", "Java class"),
    ({"security.protocol": "TLS"}, "security.protocol", "unknown security protocol 'TLS'"),
    ({"ssl.no.such.thing": "1"}, "ssl.no.such.thing", "unknown Kafka security setting"),
])
def test_what_librdkafka_cannot_do_is_a_problem_naming_the_field(tmp_path, properties, field, words):
    texts = problem_texts(tmp_path, with_properties(properties))
    assert len(texts) == 1, texts
    assert f"Stream/events: spec.dataSchemaContext.options.ddl.properties.{field}: " in texts[0]
    assert words in texts[0]
    for secret in ("s3cr", "pw"):
        assert f"password={secret}" not in texts[0]


def test_the_environment_fills_what_the_resources_leave_out(tmp_path):
    env = {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": "env-user",
           "KAFKA_SASL_PASSWORD": "env-pw", "KAFKA_SSL_CA_LOCATION": "/env/ca.pem",
           "KAFKA_SSL_CERTIFICATE_LOCATION": "/env/c.pem", "KAFKA_SSL_KEY_LOCATION": "/env/k.pem"}
    everything_from_env = events_properties(tmp_path, with_properties({}), env)
    assert everything_from_env == {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                                   "sasl.username": "env-user", "sasl.password": "env-pw", "ssl.ca.location": "/env/ca.pem",
                                   "ssl.certificate.location": "/env/c.pem", "ssl.key.location": "/env/k.pem"}
    own = events_properties(tmp_path, with_properties({"sasl.username": "yaml-user", "ssl.ca.pem": "PEM",
                                                       "ssl.keystore.location": "/yaml/c.p12"}), env)
    assert own["sasl.username"] == "yaml-user" and own["sasl.password"] == "env-pw"
    assert own["ssl.ca.pem"] == "PEM" and "ssl.ca.location" not in own  # a CA is taken whole from one place
    assert own["ssl.keystore.location"] == "/yaml/c.p12" and "ssl.key.location" not in own  # so is a client certificate
    rabbit = load_pipeline(write(tmp_path, *with_properties({})), env=env).streams
    assert all(not s.kafka_properties.get("sasl.username") for s in rabbit.values() if s.protocol == "rabbitmq")


def test_a_cluster_streams_attributes_come_between_the_stream_and_the_environment(tmp_path):
    documents = [*with_properties({"sasl.mechanism": "PLAIN"}, cluster="secured"),
                 cluster_stream("secured", {"security.protocol": "SASL_SSL", "properties.sasl.jaas.config": PLAIN_JAAS,
                                            "namespace": "streaming-runtime"})]
    props = events_properties(tmp_path, documents, {"KAFKA_SASL_USERNAME": "env-user", "KAFKA_SSL_CA_LOCATION": "/env/ca.pem"})
    assert props == {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", "sasl.username": "bob",
                     "sasl.password": "pw", "ssl.ca.location": "/env/ca.pem"}
    bad = [*with_properties({}, cluster="secured"), cluster_stream("secured", {"ssl.truststore.location": "/c/t.jks"})]
    texts = problem_texts(tmp_path, bad)
    assert len(texts) == 1 and "ClusterStream/secured: spec.storage.attributes.ssl.truststore.location: a JKS trust store" in texts[0]


def test_a_wrong_environment_value_names_the_variable(tmp_path):
    texts = problem_texts(tmp_path, with_properties({}), {"KAFKA_SASL_MECHANISM": "GSSAPI", "KAFKA_SASL_PASSWORD": "never-shown"})
    assert texts == ["environment: KAFKA_SASL_MECHANISM: " + texts[0].split("KAFKA_SASL_MECHANISM: ", 1)[1]]
    assert "Kerberos" in texts[0] and "never-shown" not in texts[0]


def _fail(message: str, key: str) -> None:
    raise AssertionError(f"{key}: {message}")


def test_validate_shows_the_security_settings_but_no_secret(monkeypatch, capsys):
    from cli.main import main

    for name, value in {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "PLAIN",
                        "KAFKA_SASL_USERNAME": "alice", "KAFKA_SASL_PASSWORD": "env-secret-4411"}.items():
        monkeypatch.setenv(name, value)
    assert main(["validate"]) == 0  # the built-in pipeline
    out = capsys.readouterr().out
    assert "kafka        security.protocol=SASL_SSL" in out and "kafka        sasl.username=alice" in out
    assert "kafka        sasl.password=***" in out
    assert "env-secret-4411" not in out
