"""Credentials and TLS settings resolved from the YAML, bindings, files and the
environment: RabbitMQ, the schema registry, the UDF channel, Kafka bindings."""

from __future__ import annotations

import base64
from pathlib import Path
from textwrap import dedent, indent
from urllib.parse import unquote, urlsplit

import pytest

from cli.validate import validate_file
from config import ConfigError, load_pipeline
from config.pipeline import Pipeline, StreamSpec

HEADER = "apiVersion: streaming.tanzu.vmware.com/v1alpha1\n"
PASSWORD = "p@ss/w0rd:with-odd chars"


def pipeline_yaml(*, output_extra: str = "", cluster: str = "", udf_attributes: str = "", more: str = "") -> str:
    """A Kafka -> UDF -> RabbitMQ pipeline; `output_extra` goes into the RabbitMQ Stream's spec."""
    text = HEADER + dedent("""\
        kind: Stream
        metadata: {name: counts}
        spec:
          name: counts
          protocol: kafka
        ---
        """) + HEADER + dedent("""\
        kind: Stream
        metadata: {name: alerts}
        spec:
          name: alerts
          protocol: rabbitmq
          storage: {clusterStream: alerts-cluster}
        """) + output_extra + "---\n" + HEADER + dedent("""\
        kind: Processor
        metadata: {name: udf}
        spec:
          type: SRP
          inputs: [{name: counts}]
          outputs: [{name: alerts}]
          template: {spec: {containers: [{name: fn, image: x}]}}
        """) + indent(dedent(udf_attributes), "  ")
    if cluster:
        text += "---\n" + HEADER + dedent(cluster)
    if more:
        text += "---\n" + dedent(more)
    return text


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Pipeline:
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    return load_pipeline(path, env=env or {})


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, env)
    return [str(p) for p in caught.value.problems]


def credentials(spec: StreamSpec) -> tuple[str | None, str | None]:
    parts = urlsplit(spec.servers)
    return (unquote(parts.username) if parts.username else None), (unquote(parts.password) if parts.password else None)


SECRET_DOC = f"""\
apiVersion: v1
kind: Secret
metadata: {{name: rabbit-creds}}
type: servicebinding.io/rabbitmq
stringData:
  type: rabbitmq
  host: rabbit.example.com
  port: "5671"
  username: iot
data:
  password: {base64.b64encode(PASSWORD.encode()).decode()}
"""


# --- RabbitMQ --------------------------------------------------------------------------


def test_a_stream_binding_to_a_secret_document_gives_address_and_credentials(tmp_path: Path) -> None:
    spec = load(tmp_path, pipeline_yaml(output_extra="  binding: rabbit-creds\n", more=SECRET_DOC)).stream("alerts")
    assert credentials(spec) == ("iot", PASSWORD)
    assert urlsplit(spec.servers).hostname == "rabbit.example.com" and urlsplit(spec.servers).port == 5671
    assert spec.credentials_from == "binding rabbit-creds (Secret document rabbit-creds)"


def test_a_service_binding_document_points_at_its_directory(tmp_path: Path) -> None:
    folder = tmp_path / "bindings" / "sb-dir"
    folder.mkdir(parents=True)
    (folder / "type").write_text("rabbitmq\n")
    (folder / "username").write_text("svc\n")
    (folder / "password").write_text("from-the-directory\n")
    (folder / "..data").mkdir()  # what Kubernetes puts beside a mounted Secret's files
    service_binding = dedent("""\
        apiVersion: servicebinding.io/v1beta1
        kind: ServiceBinding
        metadata: {name: sb-dir}
        spec:
          service: {apiVersion: v1, kind: Secret, name: rabbit-creds}
          workload: {apiVersion: apps/v1, kind: Deployment, name: srp-udf}
          env:
            - {name: SPRING_RABBITMQ_PASSWORD, key: password}
        """)
    text = pipeline_yaml(output_extra="  binding: rabbit-creds\n", more=service_binding)
    spec = load(tmp_path, text, {"SERVICE_BINDING_ROOT": str(tmp_path / "bindings"),
                                 "RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:5672/%2F"}).stream("alerts")
    assert credentials(spec) == ("svc", "from-the-directory")  # the binding wins over the environment's URL
    assert urlsplit(spec.servers).hostname == "127.0.0.1"  # the directory has no host: the address is the URL's
    # without the directory, the ServiceBinding's env projection is used
    spec = load(tmp_path, text, {"SPRING_RABBITMQ_PASSWORD": "projected"}).stream("alerts")
    assert credentials(spec)[1] == "projected"


def test_a_binding_directory_named_like_the_secret(tmp_path: Path) -> None:
    folder = tmp_path / "rabbit-creds"
    folder.mkdir()
    (folder / "uri").write_text("amqps://u:dir-secret@rabbit.internal:5671/prod")
    (folder / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n")
    spec = load(tmp_path, pipeline_yaml(output_extra="  binding: rabbit-creds\n"),
                {"SERVICE_BINDING_ROOT": str(tmp_path)}).stream("alerts")
    assert credentials(spec) == ("u", "dir-secret")
    assert spec.tls is not None and spec.tls.ca_file == str(folder / "ca.crt")
    assert urlsplit(spec.servers).path == "/prod"


def test_a_missing_binding_says_where_it_was_looked_for(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, pipeline_yaml(output_extra="  binding: nowhere\n"), {"SERVICE_BINDING_ROOT": str(tmp_path)})
    assert "Stream/alerts: spec.binding: binding 'nowhere'" in problem
    assert f"no directory {tmp_path / 'nowhere'}" in problem


def test_a_secret_with_data_that_is_not_base64_names_the_key_not_the_value(tmp_path: Path) -> None:
    broken = SECRET_DOC.replace(base64.b64encode(PASSWORD.encode()).decode(), "not*base64")
    found = problems(tmp_path, pipeline_yaml(output_extra="  binding: rabbit-creds\n", more=broken))
    assert any("data.password is not base64" in p for p in found)
    assert not any("not*base64" in p for p in found)


def test_credentials_from_files_named_by_the_environment(tmp_path: Path) -> None:
    (tmp_path / "user").write_text("filed-user\n")
    (tmp_path / "password").write_text(PASSWORD + "\n")
    env = {"RABBITMQ_URL": "amqps://rabbit.example.com/%2F", "RABBITMQ_USERNAME_FILE": str(tmp_path / "user"),
           "RABBITMQ_PASSWORD_FILE": str(tmp_path / "password")}
    spec = load(tmp_path, pipeline_yaml(), env).stream("alerts")
    assert credentials(spec) == ("filed-user", PASSWORD)
    assert spec.tls is not None and spec.tls.ca_file is None  # amqps with the system's CAs
    [problem] = problems(tmp_path, pipeline_yaml(), {**env, "RABBITMQ_PASSWORD_FILE": str(tmp_path / "missing")})
    assert problem == f"environment: RABBITMQ_PASSWORD_FILE: no file {tmp_path / 'missing'}"


def test_the_cluster_streams_url_and_the_environments_credentials(tmp_path: Path) -> None:
    cluster = """\
        kind: ClusterStream
        metadata: {name: alerts-cluster}
        spec:
          name: alerts-cluster
          storage:
            server: {url: "amqps://rabbit.example.com:5671/%2F", protocol: rabbitmq}
            attributes:
              ssl.ca.location: /etc/ca.pem
              ssl.certificate.location: /etc/client.pem
              ssl.key.location: /etc/client.key
        """
    env = {"RABBITMQ_USERNAME": "env-user", "RABBITMQ_PASSWORD": "env-pass", "RABBITMQ_SSL_CA_LOCATION": "/env/ca.pem"}
    spec = load(tmp_path, pipeline_yaml(cluster=cluster), env).stream("alerts")
    assert credentials(spec) == ("env-user", "env-pass")  # the URL has none: the environment's
    assert spec.tls is not None
    assert (spec.tls.ca_file, spec.tls.cert_file, spec.tls.key_file) == ("/etc/ca.pem", "/etc/client.pem", "/etc/client.key")
    with_userinfo = cluster.replace("amqps://rabbit", "amqps://own:own-pass@rabbit")
    assert credentials(load(tmp_path, pipeline_yaml(cluster=with_userinfo), env).stream("alerts")) == ("own", "own-pass")


def test_tls_settings_with_a_plain_amqp_url_are_an_error(tmp_path: Path) -> None:
    extra = "  attributes:\n    ssl.ca.location: /etc/ca.pem\n"
    [problem] = problems(tmp_path, pipeline_yaml(output_extra=extra), {"RABBITMQ_URL": "amqp://h:5672/%2F"})
    assert "ssl.ca.location (Stream alerts attributes) asks for TLS, but the URL is amqp://" in problem
    # the environment's TLS settings only apply to TLS URLs: no error for a plaintext one
    spec = load(tmp_path, pipeline_yaml(), {"RABBITMQ_URL": "amqp://h:5672/%2F", "RABBITMQ_SSL_CA_LOCATION": "/x"}).stream("alerts")
    assert spec.tls is None


def test_a_client_certificate_without_its_key_is_an_error(tmp_path: Path) -> None:
    extra = "  attributes:\n    ssl.certificate.location: /etc/client.pem\n"
    [problem] = problems(tmp_path, pipeline_yaml(output_extra=extra), {"RABBITMQ_URL": "amqps://h/%2F"})
    assert "spec.attributes.ssl.key.location: a client certificate needs both" in problem


def test_the_one_binding_of_type_rabbitmq_is_found_without_being_named(tmp_path: Path) -> None:
    folder = tmp_path / "some-name"
    folder.mkdir()
    for name, value in {"type": "rabbitmq", "username": "found", "password": "discovered", "host": "r", "port": "5672"}.items():
        (folder / name).write_text(value)
    spec = load(tmp_path, pipeline_yaml(), {"SERVICE_BINDING_ROOT": str(tmp_path)}).stream("alerts")
    assert credentials(spec) == ("found", "discovered")
    assert urlsplit(spec.servers).hostname == "r"
    env = {"SERVICE_BINDING_ROOT": str(tmp_path), "RABBITMQ_URL": "amqp://other:5672/%2F"}
    spec = load(tmp_path, pipeline_yaml(), env).stream("alerts")
    assert urlsplit(spec.servers).hostname == "other" and credentials(spec) == ("found", "discovered")


def test_without_anything_the_local_stack(tmp_path: Path) -> None:
    spec = load(tmp_path, pipeline_yaml()).stream("alerts")
    assert spec.servers == "amqp://guest:guest@127.0.0.1:5672/%2F" and spec.tls is None and spec.credentials_from is None


# --- Kafka bindings ----------------------------------------------------------------------


def test_a_kafka_stream_binding_gives_sasl_settings(tmp_path: Path) -> None:
    secret = dedent("""\
        apiVersion: v1
        kind: Secret
        metadata: {name: kafka-creds}
        stringData: {type: kafka, bootstrap-servers: "k1:9093,k2:9093", security.protocol: SASL_SSL,
                     sasl.mechanism: SCRAM-SHA-512, username: iot, password: kafka-secret}
        """)
    text = pipeline_yaml(more=secret).replace("  protocol: kafka\n", "  protocol: kafka\n  binding: kafka-creds\n", 1)
    spec = load(tmp_path, text).stream("counts")
    assert spec.servers == "k1:9093,k2:9093"
    assert dict(spec.kafka_properties) == {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                                           "sasl.username": "iot", "sasl.password": "kafka-secret"}


# --- the schema registry ---------------------------------------------------------------------


def registry_stream(options: str, url: str = "https://registry.example.com") -> str:
    return pipeline_yaml(more=HEADER + dedent(f"""\
        kind: Stream
        metadata: {{name: events}}
        spec:
          protocol: kafka
          dataSchemaContext:
            schemaRegistryUri: "{url}"
            schema:
              namespace: t
              name: E
              fields: [{{name: code, type: string}}]
            options:
        """) + "".join(f"      {line}\n" for line in dedent(options).splitlines()))


def test_registry_basic_auth_and_tls_in_flinks_names(tmp_path: Path) -> None:
    options = """\
        ddl.value.avro-confluent.basic-auth.credentials-source: USER_INFO
        ddl.value.avro-confluent.basic-auth.user-info: "reg-user:reg-secret"
        ddl.value.avro-confluent.ssl.truststore.location: /etc/registry-ca.pem
        ddl.value.avro-confluent.properties.timeout: "5"
        """
    spec = load(tmp_path, registry_stream(options)).stream("events")
    assert dict(spec.schema_registry_settings) == {"basic.auth.user.info": "reg-user:reg-secret",
                                                   "ssl.ca.location": "/etc/registry-ca.pem", "timeout": "5"}
    text = validate_file(str(tmp_path / "pipeline.yaml"), None)
    assert "reg-secret" not in text and "registry     basic.auth.user.info=***" in text


def test_registry_credentials_in_the_url_leave_it(tmp_path: Path) -> None:
    spec = load(tmp_path, registry_stream("ddl.value.format: avro-confluent", "https://u:url-secret@registry:8081")).stream("events")
    assert spec.schema_registry_url == "https://registry:8081"
    assert spec.schema_registry_settings["basic.auth.user.info"] == "u:url-secret"


def test_registry_credentials_from_the_environment_and_bearer_refused(tmp_path: Path) -> None:
    (tmp_path / "info").write_text("file-user:file-secret\n")
    env = {"SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO_FILE": str(tmp_path / "info")}
    spec = load(tmp_path, registry_stream("ddl.value.format: avro-confluent"), env).stream("events")
    assert spec.schema_registry_settings["basic.auth.user.info"] == "file-user:file-secret"
    [problem] = problems(tmp_path, registry_stream("ddl.value.avro-confluent.bearer-auth.token: t0ken"))
    assert "bearer-token authentication to the schema registry is not supported" in problem and "t0ken" not in problem


# --- the UDF channel ---------------------------------------------------------------------------


def test_udf_tls_from_the_processors_attributes(tmp_path: Path) -> None:
    attributes = dedent("""\
          attributes:
            srp.grpc.tls.caFile: /etc/udf-ca.pem
            srp.grpc.tls.certFile: /etc/client.pem
            srp.grpc.tls.keyFile: /etc/client.key
            srp.grpc.tls.serverName: udf.internal
        """)
    udf = load(tmp_path, pipeline_yaml(udf_attributes=attributes)).udf_processors[0].udf
    assert udf is not None and udf.tls is not None
    assert (udf.tls.ca_file, udf.tls.cert_file, udf.tls.key_file, udf.tls.server_name) == (
        "/etc/udf-ca.pem", "/etc/client.pem", "/etc/client.key", "udf.internal")


def test_udf_tls_from_the_environment_and_plaintext_by_default(tmp_path: Path) -> None:
    assert load(tmp_path, pipeline_yaml()).udf_processors[0].udf.tls is None  # type: ignore[union-attr]
    udf = load(tmp_path, pipeline_yaml(), {"IOT_UDF_TLS": "1"}).udf_processors[0].udf
    assert udf.tls is not None and udf.tls.ca_file is None  # type: ignore[union-attr]
    udf = load(tmp_path, pipeline_yaml(), {"IOT_UDF_TLS_CA": "/ca.pem"}).udf_processors[0].udf
    assert udf.tls.ca_file == "/ca.pem"  # type: ignore[union-attr]
    off = dedent("""\
          attributes:
            srp.grpc.tls.enabled: "false"
        """)
    assert load(tmp_path, pipeline_yaml(udf_attributes=off), {"IOT_UDF_TLS_CA": "/ca.pem"}).udf_processors[0].udf.tls is None  # type: ignore[union-attr]


def test_udf_tls_mistakes(tmp_path: Path) -> None:
    attributes = dedent("""\
          attributes:
            srp.grpc.tls.certFile: /etc/client.pem
            srp.grpc.tls.caFlie: /etc/ca.pem
        """)
    found = problems(tmp_path, pipeline_yaml(udf_attributes=attributes))
    assert any("spec.attributes.srp.grpc.tls.keyFile: mutual TLS needs the client certificate and its key" in p for p in found)
    assert any("unknown UDF TLS attribute 'srp.grpc.tls.caFlie'" in p for p in found)
    [problem] = problems(tmp_path, pipeline_yaml(), {"IOT_UDF_TLS_KEY": "/k"})
    assert problem.startswith("environment: IOT_UDF_TLS_CERT: mutual TLS needs")


# --- validate shows no secret ---------------------------------------------------------------------


def test_validate_shows_where_credentials_come_from_but_not_them(tmp_path: Path) -> None:
    load(tmp_path, pipeline_yaml(output_extra="  binding: rabbit-creds\n", more=SECRET_DOC))
    text = validate_file(str(tmp_path / "pipeline.yaml"), None)
    assert "credentials  from binding rabbit-creds (Secret document rabbit-creds)" in text
    assert "amqps://iot:***@rabbit.example.com:5671/%2F" in text
    assert "tls          system CAs" in text
    for form in (PASSWORD, "p%40ss", "w0rd"):
        assert form not in text


def test_the_one_binding_of_type_kafka_fills_what_the_environment_leaves_out(tmp_path: Path) -> None:
    folder = tmp_path / "bindings" / "kafka"
    folder.mkdir(parents=True)
    for name, value in {"type": "kafka", "bootstrap-servers": "k:9093", "security.protocol": "SASL_SSL",
                        "sasl.mechanism": "PLAIN", "username": "found", "password": "found-secret"}.items():
        (folder / name).write_text(value + "\n")
    env = {"SERVICE_BINDING_ROOT": str(tmp_path / "bindings")}
    spec = load(tmp_path, pipeline_yaml(), env).stream("counts")
    assert spec.servers == "k:9093"
    assert (spec.kafka_properties["sasl.username"], spec.kafka_properties["sasl.password"]) == ("found", "found-secret")
    assert spec.credentials_from == f"binding kafka (directory {folder})"
    spec = load(tmp_path, pipeline_yaml(), {**env, "KAFKA_BOOTSTRAP_SERVERS": "e:9092", "KAFKA_SASL_USERNAME": "env",
                                            "KAFKA_SASL_PASSWORD": "env-secret"}).stream("counts")
    assert spec.servers == "e:9092" and spec.kafka_properties["sasl.password"] == "env-secret"


def test_the_kafka_password_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "kafka-password").write_text("filed-kafka-secret\n")
    env = {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "iot",
           "KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "kafka-password")}
    spec = load(tmp_path, pipeline_yaml(), env).stream("counts")
    assert spec.kafka_properties["sasl.password"] == "filed-kafka-secret"
    assert "filed-kafka-secret" not in "\n".join(spec.describe_lines()) and "sasl.password=***" in "\n".join(spec.describe_lines())
