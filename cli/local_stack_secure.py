"""The local stack's secured listeners: a CA and certificates, the users'
passwords, and `secure.env`, the file that points clients at them.

Everything is made once, on the first `iot-monitoring stack up --secure`, and
kept under the stack's folder (`.stack/`): the CA at `tls/ca.pem`, keys and
passwords readable by their owner only (0600), so later starts, and the
clients that loaded `secure.env`, keep working. Nothing here prints a
secret; the command prints the path of `secure.env`.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

KAFKA_SCRAM_USER = "iot"  # SCRAM-SHA-256 and SCRAM-SHA-512
KAFKA_PLAIN_USER = "iot_plain"
RABBITMQ_USER = "iot"
CLIENT_CN = "iot-client"  # the mutual-TLS listener's client certificate
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


def write_private(path: Path, data: bytes | str) -> None:
    """Write a file only its owner can read, never readable by others even for a moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, raw)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Passwords:
    """The generated secrets, kept in `credentials.json` (0600)."""

    kafka_scram: str
    kafka_plain: str
    rabbitmq: str
    key: str  # Kafka's key store (PKCS#12: Java reads a PEM key store only with a key encrypted in an older scheme)

    @classmethod
    def new(cls) -> "Passwords":
        return cls(*(secrets.token_urlsafe(24) for _ in range(4)))


@dataclass(frozen=True)
class TlsFiles:
    """Where the certificates and keys live (`<stack>/tls/`)."""

    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca-key.pem"

    @property
    def server_cert(self) -> Path:
        return self.folder / "server.pem"  # the server certificate, then the CA

    @property
    def server_key(self) -> Path:
        return self.folder / "server-key.pem"  # unencrypted, for RabbitMQ

    @property
    def server_keystore(self) -> Path:
        return self.folder / "server.p12"  # key and chain, encrypted, for Kafka

    @property
    def client_cert(self) -> Path:
        return self.folder / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.folder / "client-key.pem"

    def complete(self) -> bool:
        return all(p.is_file() for p in (self.ca, self.ca_key, self.server_cert, self.server_key,
                                          self.server_keystore, self.client_cert, self.client_key))


# --- certificates ----------------------------------------------------------


def _name(common_name: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "iot-monitoring local stack"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def new_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _builder(subject, issuer, public_key, days: int):
    """A certificate's common part: names, key, serial, validity (from five minutes ago)."""
    from cryptography import x509

    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def new_ca(common_name: str = "iot-monitoring local CA", days: int = 3650):
    """A self-signed CA: (certificate, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    key = new_key()
    cert = (
        _builder(_name(common_name), _name(common_name), key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue(ca_cert, ca_key, common_name: str, server: bool, days: int = 825):
    """A leaf certificate signed by the CA: (certificate, key). A server's
    names are those the stack listens on (127.0.0.1, localhost)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key = new_key()
    builder = (
        _builder(_name(common_name), ca_cert.subject, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256()), key


def pem_cert(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def pem_key(key) -> bytes:
    """PKCS#8, unencrypted (the file's permissions guard it)."""
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def pkcs12(key, cert, chain: list, password: str) -> bytes:
    """A PKCS#12 key store (AES-256, as Java 17 reads it)."""
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12 as p12

    return p12.serialize_key_and_certificates(b"server", key, cert, chain, BestAvailableEncryption(password.encode()))


def make_tls_files(files: TlsFiles, key_password: str) -> None:
    """The CA, the brokers' certificate and a client certificate for mutual TLS."""
    files.folder.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = new_ca()
    server_cert, server_key = issue(ca_cert, ca_key, "localhost", server=True)
    client_cert, client_key = issue(ca_cert, ca_key, CLIENT_CN, server=False)
    chain = pem_cert(server_cert) + pem_cert(ca_cert)
    write_private(files.ca_key, pem_key(ca_key))
    write_private(files.server_key, pem_key(server_key))
    write_private(files.server_keystore, pkcs12(server_key, server_cert, [ca_cert], key_password))
    write_private(files.client_key, pem_key(client_key))
    files.server_cert.write_bytes(chain)
    files.client_cert.write_bytes(pem_cert(client_cert))
    files.ca.write_bytes(pem_cert(ca_cert))  # last: its presence says the set is complete


# --- the material as a whole -----------------------------------------------


@dataclass(frozen=True)
class SecureMaterial:
    """The secured stack's files under its folder, made on first use."""

    home: Path

    @property
    def tls(self) -> TlsFiles:
        return TlsFiles(self.home / "tls")

    @property
    def credentials_file(self) -> Path:
        return self.home / "credentials.json"

    @property
    def env_file(self) -> Path:
        return self.home / "secure.env"

    def passwords(self) -> Passwords:
        """The stored passwords, made and stored on first use."""
        try:
            return Passwords(**json.loads(self.credentials_file.read_text()))
        except FileNotFoundError:
            pass
        made = Passwords.new()
        write_private(self.credentials_file, json.dumps(asdict(made), indent=2) + "\n")
        return made

    def ensure(self) -> Passwords:
        """Passwords and certificates exist (made now when missing)."""
        passwords = self.passwords()
        if not self.tls.complete():
            make_tls_files(self.tls, passwords.key)
        return passwords

    def rabbitmq_url(self, port: int) -> str:
        """The AMQPS URL of the stack's RabbitMQ user (it holds the password)."""
        return f"amqps://{quote(RABBITMQ_USER, safe='')}:{quote(self.passwords().rabbitmq, safe='')}@127.0.0.1:{port}/%2F"

    def write_env(self, kafka_bootstrap: str, mtls_bootstrap: str, rabbitmq_port: int) -> Path:
        """`secure.env`: shell `export` lines for the SASL_SSL listener with
        the SCRAM user and for RabbitMQ over TLS, and, commented out, the
        PLAIN user and the mutual-TLS listener."""
        p = self.passwords()
        ca = str(self.tls.ca.resolve())
        exports = {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": KAFKA_SCRAM_USER,
            "KAFKA_SASL_PASSWORD": p.kafka_scram,
            "KAFKA_SSL_CA_LOCATION": ca,
            "RABBITMQ_URL": self.rabbitmq_url(rabbitmq_port),
            "RABBITMQ_SSL_CA_LOCATION": ca,
        }
        plain = {"KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": KAFKA_PLAIN_USER, "KAFKA_SASL_PASSWORD": p.kafka_plain}
        mtls = {
            "KAFKA_BOOTSTRAP_SERVERS": mtls_bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SSL",
            "KAFKA_SSL_CERTIFICATE_LOCATION": str(self.tls.client_cert.resolve()),
            "KAFKA_SSL_KEY_LOCATION": str(self.tls.client_key.resolve()),
        }
        lines = [
            "# The local stack's secured listeners (iot-monitoring stack up --secure).",
            "# Load into a shell: set -a; . .stack/secure.env; set +a",
            *(f"export {k}={shlex.quote(v)}" for k, v in exports.items()),
            "# SASL PLAIN instead of SCRAM:",
            *(f"# export {k}={shlex.quote(v)}" for k, v in plain.items()),
            "# Mutual TLS (a client certificate) instead of SASL:",
            *(f"# export {k}={shlex.quote(v)}" for k, v in mtls.items()),
            "",
        ]
        write_private(self.env_file, "\n".join(lines))
        return self.env_file


def rabbitmq_definitions(password: str) -> str:
    """RabbitMQ definitions creating the stack's user with all rights on the
    default virtual host. The password goes in as RabbitMQ's salted SHA-256
    hash, so it never appears on a command line."""
    import base64
    import hashlib

    salt = secrets.token_bytes(4)
    password_hash = base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()
    return json.dumps({
        "users": [{"name": RABBITMQ_USER, "password_hash": password_hash,
                   "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []}],
        "permissions": [{"user": RABBITMQ_USER, "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}],
    })
