"""How the connections other than Kafka's are secured: RabbitMQ, the schema
registry, the UDF's gRPC channel; and the Kafka settings a binding carries.

Each setting is taken from the most specific place that gives it:

- RabbitMQ: the Stream's `binding`, the Stream's `spec.attributes`, its
  ClusterStream's `storage.server.binding`, the ClusterStream's
  `storage.server.url` and `storage.attributes`, the environment
  (`RABBITMQ_URL`, `RABBITMQ_USERNAME`, `RABBITMQ_PASSWORD`, `RABBITMQ_SSL_*`;
  see `config.bindings.FILE_VARIABLES` for the `*_FILE` forms), the one binding of type `rabbitmq` under
  `$SERVICE_BINDING_ROOT`, the local stack. The address, the user name and
  password (a pair: from the first place that gives a password), the CA, the
  client certificate and the host name check are each decided on their own.
  TLS settings use the names librdkafka gives them (`ssl.ca.location`,
  `ssl.certificate.location`, `ssl.key.location`, `ssl.key.password`,
  `ssl.endpoint.identification.algorithm`), so a ClusterStream reads the same
  for Kafka and RabbitMQ. TLS is on when the URL is `amqps://`.
- The schema registry: Flink's `avro-confluent` options of the Stream
  (`value.avro-confluent.basic-auth.*`, `value.avro-confluent.ssl.*`,
  `value.avro-confluent.properties.*`), else the `SCHEMA_REGISTRY_*`
  variables; the result is the configuration of confluent-kafka's
  `SchemaRegistryClient`.
- The UDF channel: the Processor's `srp.grpc.tls.*` attributes, else the
  `IOT_UDF_TLS_*` variables; plaintext when neither asks for TLS.

Every secret met is remembered by `runtime.redact`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from config.bindings import Binding, Bindings
from config.errors import Problem
from config.loader import FieldPath, LoadedResource
from config.pipeline import LOCAL_RABBITMQ, StreamSpec, TlsSettings, UdfProcessor, frozen_map
from config.resources import ClusterStream, Stream
from runtime import redact
from runtime.settings import UDF_TLS_VARIABLES, udf_tls_environment

Report = Callable[[str, FieldPath], None]
EnvReport = Callable[[str, str], None]  # (message, variable)

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")

# --- TLS settings in librdkafka's vocabulary -------------------------------------

CA_KEYS = ("ssl.ca.location", "ssl.ca.pem")
CLIENT_KEYS = ("ssl.certificate.location", "ssl.key.location", "ssl.key.password")
HOSTNAME_KEY = "ssl.endpoint.identification.algorithm"
TLS_KEYS = (*CA_KEYS, *CLIENT_KEYS, HOSTNAME_KEY)


def _tls_of(settings: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in settings.items() if k in TLS_KEYS}


def tls_settings(chosen: Mapping[str, str], server_name: str | None = None) -> TlsSettings:
    """`ssl.*` settings as `TlsSettings`; `ssl.endpoint.identification.algorithm`
    `none` (or empty, as Java writes it) turns the host name check off."""
    algorithm = chosen.get(HOSTNAME_KEY)
    return TlsSettings(
        ca_file=chosen.get("ssl.ca.location") or None,
        ca_pem=chosen.get("ssl.ca.pem") or None,
        cert_file=chosen.get("ssl.certificate.location") or None,
        key_file=chosen.get("ssl.key.location") or None,
        key_password=chosen.get("ssl.key.password") or None,
        server_name=server_name,
        check_hostname=algorithm is None or algorithm.strip().lower() not in ("none", ""),
    )


def _check_client_pair(tls: Mapping[str, str], report: Callable[[str, str], None]) -> bool:
    """A client certificate needs its key and the other way round."""
    has_cert, has_key = bool(tls.get("ssl.certificate.location")), bool(tls.get("ssl.key.location"))
    if has_cert != has_key:
        missing = "ssl.key.location" if has_cert else "ssl.certificate.location"
        report(f"a client certificate needs both ssl.certificate.location and ssl.key.location; {missing} is missing",
               missing)
        return False
    return True


# --- RabbitMQ ----------------------------------------------------------------------

RABBITMQ_ENV_TLS = {
    "RABBITMQ_SSL_CA_LOCATION": "ssl.ca.location",
    "RABBITMQ_SSL_CERTIFICATE_LOCATION": "ssl.certificate.location",
    "RABBITMQ_SSL_KEY_LOCATION": "ssl.key.location",
    "RABBITMQ_SSL_KEY_PASSWORD": "ssl.key.password",
    "RABBITMQ_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM": HOSTNAME_KEY,
}
URI_ENTRIES = ("uri", "url", "connection_string", "connection-string")
CA_ENTRIES = ("ca.crt", "ca.pem", "ca")
CERT_ENTRIES = ("tls.crt", "certificates", "client.crt")
KEY_ENTRIES = ("tls.key", "private-key", "client.key")
VHOST_ENTRIES = ("vhost", "virtual-host", "virtualHost")


@dataclass
class AmqpLayer:
    """What one place says about a RabbitMQ connection."""

    where: str
    url: str | None = None  # scheme://host[:port][/vhost], maybe with userinfo
    username: str | None = None
    password: str | None = None
    tls: dict[str, str] = field(default_factory=dict)
    from_resources: bool = True  # a place in the YAML (its TLS settings must fit the URL's scheme)

    def url_credentials(self) -> tuple[str | None, str | None]:
        if not self.url:
            return None, None
        try:
            parts = urlsplit(self.url)
            user, password = parts.username, parts.password
        except ValueError:
            return None, None
        return (unquote(user) if user else None), (unquote(password) if password is not None else None)

    def credentials(self) -> tuple[str | None, str | None]:
        """Explicit user name and password over the URL's."""
        url_user, url_password = self.url_credentials()
        if self.password is not None:
            return self.username or url_user, self.password
        return self.username or url_user, url_password


def normalise_amqp_url(url: str) -> str:
    return url if "://" in url else f"amqp://{url}"


def amqp_layer_of_binding(binding: Binding, report: Report, path: FieldPath) -> AmqpLayer:
    """A binding's entries as a RabbitMQ connection: `uri`, else `host`/`port`/`vhost`,
    `username`, `password`, and TLS material (`ca.crt`, `tls.crt`, `tls.key`)."""
    if binding.type and binding.type != "rabbitmq":
        report(f"binding {binding.name!r} ({binding.origin}) is of type {binding.type!r}, not rabbitmq", path)
    tls: dict[str, str] = {}
    ca_file = binding.file_of(*CA_ENTRIES)
    if ca_file:
        tls["ssl.ca.location"] = ca_file
    elif binding.get(*CA_ENTRIES):
        tls["ssl.ca.pem"] = binding.get(*CA_ENTRIES)  # type: ignore[assignment]
    cert, key = binding.file_of(*CERT_ENTRIES), binding.file_of(*KEY_ENTRIES)
    if cert or key:
        tls.update({"ssl.certificate.location": cert or "", "ssl.key.location": key or ""})
        _check_client_pair(tls, lambda message, _key: report(f"binding {binding.name!r}: {message}", path))
    elif binding.get(*CERT_ENTRIES, *KEY_ENTRIES):
        report(f"binding {binding.name!r}: a client certificate from a {binding.origin} is not supported; "
               f"mount the Secret as a binding directory ($SERVICE_BINDING_ROOT/{binding.name})", path)
    url = binding.get(*URI_ENTRIES)
    if url is None and binding.get("host"):
        port = binding.get("port")
        # 5671 is AMQP over TLS by IANA's and RabbitMQ's convention
        secure = (binding.get("ssl", "tls") or "").strip().lower() in TRUE or bool(tls) or (port or "").strip() == "5671"
        vhost = binding.get(*VHOST_ENTRIES)
        url = (f"{'amqps' if secure else 'amqp'}://{binding.get('host')}{':' + port.strip() if port else ''}"
               f"/{quote(vhost, safe='') if vhost else '%2F'}")
    return AmqpLayer(f"binding {binding.name} ({binding.origin})", normalise_amqp_url(url) if url else None,
                     binding.get("username", "user"), binding.get("password"), tls)


def _attribute_tls(attributes: Mapping[str, str], report: Report, base: FieldPath) -> dict[str, str]:
    tls = {}
    for key, value in attributes.items():
        name = key.removeprefix("properties.")
        if name in TLS_KEYS:
            tls[name] = value
            if redact.is_secret_key(name):
                redact.remember(value)
        elif name.startswith("ssl."):
            report(f"unknown RabbitMQ TLS setting {key!r} (expected one of {', '.join(TLS_KEYS)})", (*base, key))
    _check_client_pair(tls, lambda message, missing: report(message, (*base, missing)))
    return tls


def rabbitmq_environment(env: Mapping[str, str], report_env: EnvReport, bindings: Bindings) -> list[AmqpLayer]:
    """The environment's layer, then the one discovered binding of type rabbitmq, then the local stack."""
    tls = {key: env[var] for var, key in RABBITMQ_ENV_TLS.items() if env.get(var)}
    redact.remember(tls.get("ssl.key.password"))
    _check_client_pair(tls, lambda message, missing: report_env(
        message, next(v for v, k in RABBITMQ_ENV_TLS.items() if k == missing)))
    url = env.get("RABBITMQ_URL")
    layers = [AmqpLayer("the environment", normalise_amqp_url(url) if url else None,
                        env.get("RABBITMQ_USERNAME") or None, env.get("RABBITMQ_PASSWORD") or None, tls,
                        from_resources=False)]
    discovered = bindings.discover("rabbitmq")
    if discovered is not None:
        ignore: Report = lambda message, path: None  # noqa: E731 - a discovered binding is only a fallback
        layer = amqp_layer_of_binding(discovered, ignore, ())
        layer.from_resources = False
        layers.append(layer)
    layers.append(AmqpLayer("the local stack", LOCAL_RABBITMQ, from_resources=False))
    return layers


@dataclass(frozen=True)
class AmqpConnection:
    url: str  # with the credentials, percent-encoded
    tls: TlsSettings | None
    credentials_from: str | None


def compose_amqp(layers: Sequence[AmqpLayer], report: Report, scheme_path: FieldPath) -> AmqpConnection:
    """One connection from the layers, each part from the first layer that gives it."""
    address = next(layer for layer in layers if layer.url)
    parts = urlsplit(address.url)  # type: ignore[arg-type]
    scheme = parts.scheme.lower()
    if scheme not in ("amqp", "amqps"):
        report(f"a RabbitMQ URL starts with amqp:// or amqps://, not {parts.scheme}:// ({address.where})", scheme_path)
    with_password = next((layer for layer in layers if layer.credentials()[1] is not None), None)
    username = password = None
    if with_password is not None:
        username, password = with_password.credentials()
    if username is None:
        username = next((u for u in (layer.credentials()[0] for layer in layers) if u), None)
    redact.remember(password)
    host = parts.netloc.rsplit("@", 1)[-1]
    userinfo = ""
    if username is not None:
        userinfo = quote(username, safe="") + (f":{quote(password, safe='')}" if password is not None else "") + "@"
    url = urlunsplit(parts._replace(scheme=scheme, netloc=userinfo + host))

    chosen: dict[str, str] = {}
    for group in (CA_KEYS, CLIENT_KEYS, (HOSTNAME_KEY,)):
        owner = next((layer for layer in layers if any(layer.tls.get(k) is not None for k in group)), None)
        if owner is None:
            continue
        if scheme != "amqps":
            if owner.from_resources:
                report(f"{', '.join(k for k in group if owner.tls.get(k) is not None)} ({owner.where}) asks for TLS, "
                       f"but the URL is {scheme}://: use amqps:// (port 5671 by default)", scheme_path)
            continue
        chosen.update({k: owner.tls[k] for k in group if owner.tls.get(k) is not None})
    tls = tls_settings(chosen) if scheme == "amqps" else None
    source = with_password.where if with_password is not None and with_password.where != "the local stack" else None
    return AmqpConnection(url, tls, source)


# --- the schema registry -----------------------------------------------------------

REGISTRY_PREFIXES = ("value.avro-confluent.", "avro-confluent.")
CLIENT_PROPERTIES = frozenset({
    "basic.auth.user.info", "basic.auth.credentials.source", "ssl.ca.location", "ssl.certificate.location",
    "ssl.key.location", "ssl.key.password", "timeout",
})
REGISTRY_ENV = {
    "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": "basic.auth.user.info",
    "SCHEMA_REGISTRY_SSL_CA_LOCATION": "ssl.ca.location",
    "SCHEMA_REGISTRY_SSL_CERTIFICATE_LOCATION": "ssl.certificate.location",
    "SCHEMA_REGISTRY_SSL_KEY_LOCATION": "ssl.key.location",
    "SCHEMA_REGISTRY_SSL_KEY_PASSWORD": "ssl.key.password",
}
CREDENTIAL_SOURCES = ("USER_INFO", "URL", "SASL_INHERIT")


FLINK_REGISTRY_OPTIONS: dict[str, str | None] = {
    "basic-auth.credentials-source": "basic.auth.credentials.source",
    "basic-auth.user-info": "basic.auth.user.info",
    "ssl.truststore.location": "ssl.ca.location",
    "ssl.truststore.password": None,  # a PEM trust store has no password
    "ssl.keystore.location": "ssl.certificate.location",  # PEM: the certificate and its key in one file
    "ssl.keystore.password": "ssl.key.password",
}
IGNORED_REGISTRY_OPTIONS = ("url", "schema-registry.url", "subject", "schema-registry.subject", "schema-id", "schema")


def registry_settings(
    url: str, options: Mapping[str, str], kafka_properties: Mapping[str, str], env: Mapping[str, str],
    report: Callable[[str, str], None], report_env: EnvReport,
) -> tuple[str, dict[str, str]]:
    """(the registry URL without userinfo, SchemaRegistryClient settings besides `url`).
    `report(message, option)` names the option as the user wrote it (without `ddl.`)."""
    given: dict[str, tuple[str, str]] = {}  # client setting -> (option or variable as written, value)
    for key, value in options.items():
        prefix = next((p for p in REGISTRY_PREFIXES if key.startswith(p)), None)
        name = key[len(prefix):] if prefix else ""
        if not prefix or name in IGNORED_REGISTRY_OPTIONS:
            continue
        if name.startswith("properties."):
            prop = name[len("properties."):]
            if prop in CLIENT_PROPERTIES:
                given[prop] = (key, value)
            else:
                report(f"unsupported schema registry client property {prop!r} (supported: "
                       f"{', '.join(sorted(CLIENT_PROPERTIES))})", key)
        elif name in FLINK_REGISTRY_OPTIONS:
            setting = FLINK_REGISTRY_OPTIONS[name]
            if setting is not None:
                given[setting] = (key, value)
        elif name.startswith("bearer-auth."):
            report("bearer-token authentication to the schema registry is not supported; use basic-auth.user-info", key)
        elif name.startswith(("basic-auth.", "ssl.")):
            report(f"unknown schema registry option {key!r}", key)
    from_env: set[str] = set()
    for variable, setting in REGISTRY_ENV.items():
        if setting not in given:
            value = env.get(variable)
            if value:
                given[setting] = (variable, value)
                from_env.add(setting)

    def complain(setting: str, message: str) -> None:
        where = given[setting][0] if setting in given else setting
        (report_env if setting in from_env else report)(message, where)

    settings = {k: v for k, (_, v) in given.items()}
    source = settings.pop("basic.auth.credentials.source", "").strip().upper() or None
    if source is not None and source not in CREDENTIAL_SOURCES:
        complain("basic.auth.credentials.source",
                 f"unknown credentials source {source!r} (expected one of {', '.join(CREDENTIAL_SOURCES)})")
    plain_url, url_user_info = _split_userinfo(url)
    if source == "SASL_INHERIT":
        user, password = kafka_properties.get("sasl.username"), kafka_properties.get("sasl.password")
        if user and password:
            settings["basic.auth.user.info"] = f"{user}:{password}"
        else:
            complain("basic.auth.credentials.source",
                     "credentials source SASL_INHERIT needs the stream's sasl.username and sasl.password")
    elif url_user_info and "basic.auth.user.info" not in settings:
        settings["basic.auth.user.info"] = url_user_info
    info = settings.get("basic.auth.user.info")
    if info is not None:
        redact.remember(info, info.partition(":")[2])
        if ":" not in info:
            complain("basic.auth.user.info", "the user info must be '<user>:<password>'")
    redact.remember(settings.get("ssl.key.password"))
    if "ssl.key.location" in settings and "ssl.certificate.location" not in settings:
        complain("ssl.key.location", "ssl.key.location needs ssl.certificate.location (the client certificate)")
    return plain_url, settings


def _split_userinfo(url: str) -> tuple[str, str | None]:
    """`https://user:pw@host` -> (`https://host`, `user:pw`), each URL of a comma-separated list."""
    plain, info = [], None
    for part in url.split(","):
        part = part.strip()
        try:
            parts = urlsplit(part)
        except ValueError:
            plain.append(part)
            continue
        if parts.username is not None:
            info = info or f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            part = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
        plain.append(part)
    return ",".join(plain), info


# --- the UDF channel ---------------------------------------------------------------

UDF_TLS_ATTRIBUTES = {
    "srp.grpc.tls.enabled": "enabled",
    "srp.grpc.tls.caFile": "ssl.ca.location",
    "srp.grpc.tls.certFile": "ssl.certificate.location",
    "srp.grpc.tls.keyFile": "ssl.key.location",
    "srp.grpc.tls.serverName": "server.name",
}


UDF_TLS_GROUPS = (("enabled",), ("ssl.ca.location",), ("ssl.certificate.location", "ssl.key.location"), ("server.name",))


def udf_tls(attributes: Mapping[str, str], env: Mapping[str, str], report: Report, report_env: EnvReport) -> TlsSettings | None:
    """The UDF channel's TLS: the Processor's `srp.grpc.tls.*`, else `IOT_UDF_TLS_*`
    (each group of settings from the first that gives any); None for plaintext."""
    for key in attributes:
        if key.startswith("srp.grpc.tls") and key not in UDF_TLS_ATTRIBUTES:
            report(f"unknown UDF TLS attribute {key!r} (expected one of {', '.join(UDF_TLS_ATTRIBUTES)})",
                   ("spec", "attributes", key))
    sources = (
        (attributes, UDF_TLS_ATTRIBUTES, lambda message, name: report(message, ("spec", "attributes", name))),
        (udf_tls_environment(env), UDF_TLS_VARIABLES, report_env),
    )
    chosen: dict[str, str] = {}
    for group in UDF_TLS_GROUPS:
        for values, names, complain in sources:
            by_setting = {setting: name for name, setting in names.items()}
            part = {k: values[by_setting[k]] for k in group if values.get(by_setting[k])}
            if not part:
                continue
            chosen.update(part)
            missing = [by_setting[k] for k in group if k not in part]
            if missing:
                complain(f"mutual TLS needs the client certificate and its key: {missing[0]} is missing", missing[0])
            if "enabled" in part and part["enabled"].strip().lower() not in TRUE + FALSE:
                complain(f"must be true or false, got {part['enabled']!r}", by_setting["enabled"])
            break
    enabled = chosen.get("enabled")
    if enabled is not None:
        wanted = enabled.strip().lower() in TRUE
    else:  # a CA or a client certificate asks for TLS by itself
        wanted = "ssl.ca.location" in chosen or "ssl.certificate.location" in chosen
    return tls_settings(chosen, server_name=chosen.get("server.name")) if wanted else None


# --- Kafka settings of a binding -------------------------------------------------------

KAFKA_BINDING_KEYS = ("security.protocol", "sasl.mechanism", "sasl.jaas.config", "sasl.username", "sasl.password")


def kafka_binding_properties(binding: Binding, report: Report, path: FieldPath) -> tuple[str | None, dict[str, str]]:
    """(bootstrap servers, client settings) of a binding of type kafka: its
    librdkafka-named entries, `username`/`password` as the SASL credentials,
    `ca.crt`, `tls.crt`, `tls.key` as the TLS files."""
    if binding.type and binding.type != "kafka":
        report(f"binding {binding.name!r} ({binding.origin}) is of type {binding.type!r}, not kafka", path)
    props = {k: binding.entries[k] for k in KAFKA_BINDING_KEYS if binding.entries.get(k)}
    if binding.get("username", "user") and "sasl.username" not in props:
        props["sasl.username"] = binding.get("username", "user")  # type: ignore[assignment]
    if binding.get("password") and "sasl.password" not in props:
        props["sasl.password"] = binding.get("password")  # type: ignore[assignment]
    for entries, setting in ((CA_ENTRIES, "ssl.ca.location"), (CERT_ENTRIES, "ssl.certificate.location"),
                             (KEY_ENTRIES, "ssl.key.location")):
        location = binding.file_of(*entries)
        if location:
            props[setting] = location
        elif binding.get(*entries):
            pem_key = {"ssl.ca.location": "ssl.ca.pem", "ssl.certificate.location": "ssl.certificate.pem",
                       "ssl.key.location": "ssl.key.pem"}[setting]
            props[pem_key] = binding.get(*entries)  # type: ignore[assignment]
    servers = binding.get("bootstrap-servers", "bootstrap.servers", "bootstrapServers")
    if servers is None and binding.get("host"):
        port = binding.get("port")
        servers = f"{binding.get('host')}{':' + port.strip() if port else ''}"
    redact.remember_mapping(props)
    return servers, props


# --- applied to the resolved objects -------------------------------------------------


@dataclass(frozen=True)
class KafkaBinding:
    """A Kafka stream's binding: the one it names (`properties`, above its
    ClusterStream's settings), else the one of type kafka found under
    `$SERVICE_BINDING_ROOT` (`fallback`, below the environment's)."""

    properties: Mapping[str, str] = field(default_factory=dict)
    fallback: Mapping[str, str] = field(default_factory=dict)
    servers: str | None = None  # bootstrap servers, when nothing more specific gives them
    where: str | None = None


class Connections:
    """Secures the resolved streams and UDF processors (called by `config.resolve`)."""

    def __init__(self, loaded: Sequence[LoadedResource], env: Mapping[str, str], problems: list[Problem]) -> None:
        self.env = env
        self.problems = problems
        redact.remember_environment(env)
        self.bindings = Bindings(loaded, env)
        self.clusters = {item.name: item for item in loaded if isinstance(item.resource, ClusterStream)}
        self._environment: list[AmqpLayer] | None = None

    def report_env(self, message: str, variable: str) -> None:
        self.problems.append(Problem("environment", f"{variable}: {message}"))

    def _amqp_environment(self) -> list[AmqpLayer]:
        if self._environment is None:
            self._environment = rabbitmq_environment(self.env, self.report_env, self.bindings)
        return self._environment

    def apply(self, spec: StreamSpec, item: LoadedResource, report: Report, bound: KafkaBinding | None = None) -> StreamSpec:
        """The stream with its credentials, TLS and registry settings (`bound`:
        what `kafka_binding` found for it, already in its Kafka properties)."""
        resource = item.resource
        assert isinstance(resource, Stream)
        if spec.protocol == "rabbitmq":
            spec = self._rabbitmq(spec, resource, report)
        elif bound is not None and bound.where:
            given = {**bound.fallback, **bound.properties}
            used = any(spec.kafka_properties.get(k) == v for k, v in given.items() if k.startswith(("sasl.", "ssl.")))
            spec = dataclasses.replace(spec, servers=bound.servers or spec.servers,
                                       credentials_from=bound.where if used else spec.credentials_from)
        if spec.schema_registry_url:
            option_base = ("spec", "dataSchemaContext", "options")
            url, settings = registry_settings(
                spec.schema_registry_url, spec.options, spec.kafka_properties, self.env,
                lambda message, key: report(message, (*option_base, "ddl." + key)), self.report_env,
            )
            spec = dataclasses.replace(spec, schema_registry_url=url, schema_registry_settings=frozen_map(settings))
        return spec

    def _cluster(self, resource: Stream) -> LoadedResource | None:
        name = resource.spec.storage.cluster_stream if resource.spec.storage else None
        return self.clusters.get(name) if name else None

    def _rabbitmq(self, spec: StreamSpec, resource: Stream, report: Report) -> StreamSpec:
        layers: list[AmqpLayer] = []
        if resource.spec.binding:
            found = self.bindings.find(resource.spec.binding, report, ("spec", "binding"))
            if found is not None:
                layers.append(amqp_layer_of_binding(found, report, ("spec", "binding")))
        layers.append(AmqpLayer(f"Stream {resource.metadata.name} attributes",
                                tls=_attribute_tls(resource.spec.attributes, report, ("spec", "attributes"))))
        cluster_item = self._cluster(resource)
        if cluster_item is not None:
            cluster = cluster_item.resource
            assert isinstance(cluster, ClusterStream)
            storage = cluster.spec.storage
            server = storage.first_server if storage else None
            cluster_report = self._reporter(cluster_item)
            if server is not None and server.binding:
                found = self.bindings.find(server.binding, cluster_report, ("spec", "storage", "server", "binding"))
                if found is not None:
                    layers.append(amqp_layer_of_binding(found, cluster_report, ("spec", "storage", "server", "binding")))
            url = normalise_amqp_url(server.url) if server is not None and server.url else None
            redact.remember(redact.url_password(url))
            layers.append(AmqpLayer(f"ClusterStream {cluster.metadata.name}", url,
                                    tls=_attribute_tls(storage.attributes if storage else {}, cluster_report,
                                                       ("spec", "storage", "attributes"))))
        layers += self._amqp_environment()
        connection = compose_amqp(layers, report, ("spec", "storage", "clusterStream"))
        return dataclasses.replace(spec, servers=connection.url, tls=connection.tls,
                                   credentials_from=connection.credentials_from)

    def kafka_binding(self, item: LoadedResource, report: Report) -> KafkaBinding:
        """What the binding a Kafka stream (or its ClusterStream) names gives:
        settings for the security layers (`config.resolve`), and the bootstrap
        servers when the ClusterStream has no URL."""
        resource = item.resource
        assert isinstance(resource, Stream)
        if resource.spec.protocol != "kafka":
            return KafkaBinding()
        binding_name, path, where = resource.spec.binding, ("spec", "binding"), report
        cluster_item = self._cluster(resource)
        server = None
        if cluster_item is not None:
            storage = cluster_item.resource.spec.storage  # type: ignore[union-attr]
            server = storage.first_server if storage else None
            if not binding_name and server is not None and server.binding:
                binding_name, path, where = server.binding, ("spec", "storage", "server", "binding"), self._reporter(cluster_item)
        has_url = server is not None and bool(server.url)
        if not binding_name:
            discovered = self._discovered_kafka()
            if discovered is None:
                return KafkaBinding()
            servers, props = kafka_binding_properties(discovered, lambda message, path: None, ())
            from_env = bool(self.env.get("KAFKA_BOOTSTRAP_SERVERS"))
            return KafkaBinding(fallback=props, servers=None if has_url or from_env else servers,
                                where=f"binding {discovered.name} ({discovered.origin})")
        found = self.bindings.find(binding_name, where, path)
        if found is None:
            return KafkaBinding()
        servers, props = kafka_binding_properties(found, where, path)
        return KafkaBinding(props, servers=None if has_url else servers, where=f"binding {found.name} ({found.origin})")

    def _discovered_kafka(self) -> Binding | None:
        if not hasattr(self, "_kafka_discovered"):
            self._kafka_discovered = self.bindings.discover("kafka")
        return self._kafka_discovered

    def _reporter(self, item: LoadedResource) -> Report:
        return lambda message, path: self.problems.append(item.origin.problem(message, path))

    def udf(self, processor: UdfProcessor, report: Report) -> UdfProcessor:
        """The processor with its UDF channel's TLS."""
        if processor.udf is None:
            return processor
        tls = udf_tls(processor.attributes, self.env, report, self.report_env)
        return dataclasses.replace(processor, udf=dataclasses.replace(processor.udf, tls=tls))


__all__ = ["Connections", "compose_amqp", "registry_settings", "tls_settings", "udf_tls"]
