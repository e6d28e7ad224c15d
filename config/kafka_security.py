"""Kafka security settings as librdkafka (the client here) takes them.

They come from three places, the first that sets a setting winning: the
Stream's `ddl.properties.*` options, the ClusterStream it names
(`spec.storage.attributes`, the CRD's free-form map, with or without the
`properties.` prefix), and the `KAFKA_*` environment variables. Streaming
Runtime pipelines were written for Flink's Java client, so Java's names and
forms are translated where librdkafka has the same thing (`sasl.jaas.config`
into `sasl.mechanism`/`sasl.username`/`sasl.password`, PEM and PKCS#12 key
and trust stores into file locations), and refused, naming the field, where
it has not (JKS stores, Kerberos, Java classes).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from runtime import redact

Report = Callable[[str, str], None]  # (message, the key as the user wrote it)

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
SCRAM = ("SCRAM-SHA-256", "SCRAM-SHA-512")
NO_KERBEROS = ("Kerberos (GSSAPI) is not supported: the Kafka clients of this package are built without it; "
               "use SCRAM-SHA-256, SCRAM-SHA-512, PLAIN or OAUTHBEARER over SASL_SSL")

ENVIRONMENT = {
    "KAFKA_SECURITY_PROTOCOL": "security.protocol",
    "KAFKA_SASL_MECHANISM": "sasl.mechanism",
    "KAFKA_SASL_USERNAME": "sasl.username",
    "KAFKA_SASL_PASSWORD": "sasl.password",
    "KAFKA_SSL_CA_LOCATION": "ssl.ca.location",
    "KAFKA_SSL_CERTIFICATE_LOCATION": "ssl.certificate.location",
    "KAFKA_SSL_KEY_LOCATION": "ssl.key.location",
    "KAFKA_SSL_KEY_PASSWORD": "ssl.key.password",
}

# librdkafka's own names (2.12), taken as they are.
LIBRDKAFKA_KEYS = frozenset({
    "security.protocol",
    "ssl.cipher.suites", "ssl.curves.list", "ssl.sigalgs.list", "ssl.key.location", "ssl.key.password",
    "ssl.key.pem", "ssl.certificate.location", "ssl.certificate.pem", "ssl.ca.location", "ssl.ca.pem",
    "ssl.ca.certificate.stores", "ssl.crl.location", "ssl.keystore.location", "ssl.keystore.password",
    "ssl.providers", "ssl.engine.location", "ssl.engine.id", "ssl.endpoint.identification.algorithm",
    "enable.ssl.certificate.verification",
    "sasl.mechanism", "sasl.kerberos.service.name", "sasl.kerberos.principal", "sasl.kerberos.kinit.cmd",
    "sasl.kerberos.keytab", "sasl.kerberos.min.time.before.relogin", "sasl.username", "sasl.password",
    "sasl.oauthbearer.config", "enable.sasl.oauthbearer.unsecure.jwt", "sasl.oauthbearer.method",
    "sasl.oauthbearer.client.id", "sasl.oauthbearer.client.secret", "sasl.oauthbearer.scope",
    "sasl.oauthbearer.extensions", "sasl.oauthbearer.token.endpoint.url", "sasl.oauthbearer.grant.type",
    "sasl.oauthbearer.metadata.authentication.type",
})

# Java settings that choose the JVM's own TLS machinery; librdkafka uses
# OpenSSL (TLS 1.2 and later), so they have nothing to say here.
JVM_ONLY = frozenset({
    "ssl.protocol", "ssl.enabled.protocols", "ssl.keymanager.algorithm", "ssl.trustmanager.algorithm",
    "ssl.secure.random.implementation", "ssl.provider",
})
OAUTH_HANDLERS = (
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerLoginCallbackHandler",
)
LOGIN_MODULES = {
    "org.apache.kafka.common.security.plain.PlainLoginModule": "PLAIN",
    "org.apache.kafka.common.security.scram.ScramLoginModule": "SCRAM",
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule": "OAUTHBEARER",
    "com.sun.security.auth.module.Krb5LoginModule": "GSSAPI",
}
CA_KEYS = ("ssl.ca.location", "ssl.ca.pem")
CLIENT_CERT_KEYS = ("ssl.keystore.location", "ssl.certificate.location", "ssl.certificate.pem",
                    "ssl.key.location", "ssl.key.pem", "ssl.key.password")


def is_security_key(key: str) -> bool:
    return key == "security.protocol" or key.startswith(("ssl.", "sasl.", "enable.ssl.", "enable.sasl."))


def is_secret_key(key: str) -> bool:
    """A client setting whose value must never be shown: passwords, secrets,
    private keys, JAAS lines (`runtime.redact` decides, for every setting of the package)."""
    return redact.is_secret_key(key)


def from_environment(env: Mapping[str, str], report: Report) -> dict[str, str]:
    """The KAFKA_* security variables that are set, as librdkafka settings."""
    chosen = {key: env[var] for var, key in ENVIRONMENT.items() if env.get(var)}
    named = {key: var for var, key in ENVIRONMENT.items()}
    return translate(chosen, lambda message, key: report(message, named.get(key, key)))


def as_environment(settings: Mapping[str, str]) -> dict[str, str]:
    """librdkafka settings as the variables `from_environment` reads (and
    `KAFKA_BOOTSTRAP_SERVERS`), for a child process."""
    variables = {key: var for var, key in ENVIRONMENT.items()}
    env = {variables[k]: v for k, v in settings.items() if k in variables}
    if "bootstrap.servers" in settings:
        env["KAFKA_BOOTSTRAP_SERVERS"] = settings["bootstrap.servers"]
    return env


def translate(props: Mapping[str, str], report: Report) -> dict[str, str]:
    """The security settings among `props` in librdkafka's names; every
    other key is left out (the caller keeps those as they are)."""
    given = {("sasl.mechanism" if k == "sasl.mechanisms" else k): (k, str(v)) for k, v in props.items() if is_security_key(k)}
    out: dict[str, str] = {}

    def take(key: str) -> str | None:
        item = given.pop(key, None)
        return None if item is None else item[1]

    def where(key: str) -> str:
        return given[key][0] if key in given else key

    if "security.protocol" in given:
        value = take("security.protocol").strip().upper()  # type: ignore[union-attr]
        if value in PROTOCOLS:
            out["security.protocol"] = value
        else:
            report(f"unknown security protocol {value!r} (expected one of {', '.join(PROTOCOLS)})", "security.protocol")

    mechanism = None
    if "sasl.mechanism" in given:
        key = where("sasl.mechanism")
        mechanism = take("sasl.mechanism").strip().upper()  # type: ignore[union-attr]
        if mechanism == "GSSAPI":
            report(NO_KERBEROS, key)
        elif mechanism not in MECHANISMS:
            report(f"unknown SASL mechanism {mechanism!r} (expected one of {', '.join(MECHANISMS)})", key)
        else:
            out["sasl.mechanism"] = mechanism

    if "sasl.jaas.config" in given:
        out.update(_jaas(take("sasl.jaas.config") or "", mechanism, given, report))

    handler = take("sasl.login.callback.handler.class")
    if handler is not None and handler.strip() not in OAUTH_HANDLERS:
        report("a Java callback handler cannot run here (librdkafka is not Java); remove it", "sasl.login.callback.handler.class")
    for java_class in ("sasl.client.callback.handler.class", "sasl.login.class", "ssl.engine.factory.class"):
        if java_class in given:
            take(java_class)
            report("a Java class cannot run here (librdkafka is not Java); remove it", java_class)

    out.update(_trust_store(given, take, report))
    out.update(_key_store(given, take, report))

    for key in list(given):
        original, value = given.pop(key)
        if key in JVM_ONLY:
            continue
        if key == "ssl.endpoint.identification.algorithm":
            out[key] = "none" if not value.strip() else value.strip().lower()  # Java turns the check off with ""
        elif key in LIBRDKAFKA_KEYS:
            out[key] = value
        else:
            report(f"unknown Kafka security setting {original!r}: neither librdkafka nor its Java names have it", original)
    return out


def _jaas(text: str, mechanism: str | None, given: Mapping[str, tuple[str, str]], report: Report) -> dict[str, str]:
    """Java's `sasl.jaas.config` (one login module and its options) as
    librdkafka's mechanism and credentials."""
    parsed = parse_jaas(text)
    if parsed is None:
        report("cannot read sasl.jaas.config: expected '<LoginModule class> required key=\"value\" ...;'", "sasl.jaas.config")
        return {}
    module, options = parsed
    kind = LOGIN_MODULES.get(module)
    if kind is None:
        report(f"unsupported login module {module!r} (supported: PlainLoginModule, ScramLoginModule, "
               "OAuthBearerLoginModule with clientId and clientSecret)", "sasl.jaas.config")
        return {}
    if kind == "GSSAPI":
        report(NO_KERBEROS, "sasl.jaas.config")
        return {}
    if "sasl.username" in given or "sasl.password" in given:
        report("the credentials are given twice: in sasl.jaas.config and as sasl.username/sasl.password; keep one",
               "sasl.jaas.config")
        return {}
    if kind == "SCRAM" and mechanism not in SCRAM:
        report("ScramLoginModule needs sasl.mechanism SCRAM-SHA-256 or SCRAM-SHA-512", "sasl.jaas.config")
        return {}
    if kind in ("PLAIN", "OAUTHBEARER") and mechanism not in (None, kind):
        report(f"the login module is for {kind}, but sasl.mechanism is {mechanism}", "sasl.jaas.config")
        return {}
    resolved = mechanism if kind == "SCRAM" else kind
    if kind == "OAUTHBEARER":
        if not (options.get("clientId") and options.get("clientSecret")):
            report("OAuthBearerLoginModule needs clientId and clientSecret (OIDC client credentials); "
                   "unsecured tokens are not supported", "sasl.jaas.config")
            return {}
        out = {"sasl.mechanism": "OAUTHBEARER", "sasl.oauthbearer.method": "oidc",
               "sasl.oauthbearer.client.id": options["clientId"], "sasl.oauthbearer.client.secret": options["clientSecret"]}
        if options.get("scope"):
            out["sasl.oauthbearer.scope"] = options["scope"]
        return out
    if "username" not in options or "password" not in options:
        report(f"{module.rsplit('.', 1)[-1]} needs username and password", "sasl.jaas.config")
        return {}
    return {"sasl.mechanism": resolved or kind, "sasl.username": options["username"], "sasl.password": options["password"]}


_JAAS = re.compile(r"\s*([\w.$]+)\s+(required|requisite|sufficient|optional)\b(.*?);?\s*$", re.DOTALL)
_OPTION = re.compile(r"""\s*([\w.$-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|([^\s"';]+))""")


def parse_jaas(text: str) -> tuple[str, dict[str, str]] | None:
    """`Module required a="1" b='2' c=3;` -> (module, options); None when it
    is not that shape. Quotes and backslash escapes as Java's tokenizer reads them."""
    match = _JAAS.match(text)
    if match is None:
        return None
    options: dict[str, str] = {}
    rest = match.group(3)
    pos = 0
    while rest[pos:].strip():
        option = _OPTION.match(rest, pos)
        if option is None:
            return None
        quoted = option.group(2) if option.group(2) is not None else option.group(3)
        options[option.group(1)] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else option.group(4)
        pos = option.end()
    return match.group(1), options


def _store_type(given: Mapping[str, tuple[str, str]], take, kind: str, default_for_unknown: str) -> str:
    """A store's type: as given, else from the file's extension (Java's own default is JKS)."""
    explicit = take(f"ssl.{kind}.type")
    if explicit:
        return explicit.strip().upper()
    location = given.get(f"ssl.{kind}.location", ("", ""))[1].lower()
    if location.endswith(".jks"):
        return "JKS"
    if location.endswith((".p12", ".pfx")):
        return "PKCS12"
    if location.endswith((".pem", ".crt", ".cer", ".key")):
        return "PEM"
    return default_for_unknown


def _trust_store(given, take, report: Report) -> dict[str, str]:
    """Java's trust store as librdkafka's CA: a PEM file or PEM text."""
    out: dict[str, str] = {}
    if "ssl.truststore.certificates" in given:
        out["ssl.ca.pem"] = take("ssl.truststore.certificates")
    if "ssl.truststore.location" not in given and "ssl.truststore.type" not in given:
        take("ssl.truststore.password")
        return out
    kind = _store_type(given, take, "truststore", "PEM")
    location = take("ssl.truststore.location")
    take("ssl.truststore.password")  # a PEM trust store has none; librdkafka never needs it
    if location is None:
        return out
    if kind == "PEM":
        out["ssl.ca.location"] = location
    else:
        report(f"a {kind} trust store cannot be read by librdkafka: export the CA certificates as PEM "
               f"(keytool -exportcert -rfc -keystore {location} -alias <ca> > ca.pem) and give that file "
               "as ssl.truststore.location (with ssl.truststore.type PEM) or ssl.ca.location", "ssl.truststore.location")
    return out


def _key_store(given, take, report: Report) -> dict[str, str]:
    """Java's key store as librdkafka's client certificate: PKCS#12 as it
    is, PEM as certificate and key locations, inline PEM as PEM text."""
    out: dict[str, str] = {}
    if "ssl.keystore.key" in given or "ssl.keystore.certificate.chain" in given:
        key, chain = take("ssl.keystore.key"), take("ssl.keystore.certificate.chain")
        if key is None or chain is None:
            report("ssl.keystore.key and ssl.keystore.certificate.chain go together",
                   "ssl.keystore.key" if key is None else "ssl.keystore.certificate.chain")
        else:
            out.update({"ssl.key.pem": key, "ssl.certificate.pem": chain})
    if "ssl.keystore.location" not in given and "ssl.keystore.type" not in given:
        return out
    kind = _store_type(given, take, "keystore", "PKCS12")  # librdkafka's ssl.keystore.location is PKCS#12
    location = take("ssl.keystore.location")
    if location is None:
        return out
    if kind == "PKCS12":
        out["ssl.keystore.location"] = location
    elif kind == "PEM":
        if "ssl.keystore.password" in given:
            take("ssl.keystore.password")
            report("a PEM key store takes no ssl.keystore.password; the key's password is ssl.key.password",
                   "ssl.keystore.password")
        out.update({"ssl.certificate.location": location, "ssl.key.location": location})
    else:
        report(f"a {kind} key store cannot be read by librdkafka: convert it to PKCS#12 (keytool -importkeystore "
               f"-srckeystore {location} -destkeystore client.p12 -deststoretype PKCS12) or PEM", "ssl.keystore.location")
    return out


def layered(layers: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """Settings from several places, the first place that sets one winning.
    The CA and the client certificate are each taken whole from the first
    place that gives any part of them, so two places' halves never mix."""
    out: dict[str, str] = {}
    owners: dict[tuple[str, ...], int] = {}
    for i, layer in enumerate(layers):
        for key, value in layer.items():
            group = CA_KEYS if key in CA_KEYS else CLIENT_CERT_KEYS if key in CLIENT_CERT_KEYS else None
            if group is not None and owners.setdefault(group, i) != i:
                continue
            out.setdefault(key, value)
    return out
