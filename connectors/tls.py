"""TLS for the clients the package opens itself: RabbitMQ (pika), the UDF's
gRPC channel, the schema registry's HTTP client.

One `config.pipeline.TlsSettings` becomes what each library takes (an
`ssl.SSLContext`, gRPC channel credentials, confluent-kafka's `ssl.*`
settings), and a TLS failure is told apart from a broker that is merely
down: an untrusted certificate, a host name the certificate does not carry,
a client certificate the server refuses, or a server that does not speak
TLS on that port are configuration errors, which no retry will mend.
"""

from __future__ import annotations

import re
import socket
import ssl
from pathlib import Path
from typing import Any, Iterator

from config.pipeline import TlsSettings
from runtime.logs import FatalError


class TlsConfigError(FatalError):
    """TLS material that cannot be used, or a handshake the server or the client refused."""


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None


def ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    """A client context: the given CA (else the system's), the client
    certificate when there is one, TLS 1.2 at least, the host name checked
    unless switched off."""
    try:
        context = ssl.create_default_context(cafile=tls.ca_file, cadata=tls.ca_pem)
    except FileNotFoundError:
        raise TlsConfigError(f"cannot read the CA file {tls.ca_file}: no such file") from None
    except (ssl.SSLError, ValueError, OSError) as exc:
        raise TlsConfigError(f"the CA {'file ' + tls.ca_file if tls.ca_file else 'certificates'} cannot be used: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = tls.check_hostname
    if tls.cert_file:
        try:
            context.load_cert_chain(tls.cert_file, tls.key_file, tls.key_password)
        except FileNotFoundError:
            raise TlsConfigError(f"cannot read the client certificate {tls.cert_file} or its key {tls.key_file}") from None
        except (ssl.SSLError, ValueError, OSError) as exc:
            raise TlsConfigError(f"the client certificate {tls.cert_file} with key {tls.key_file} cannot be used "
                                 f"(a wrong key password, or a key of another certificate): {exc}") from None
    return context


def private_key_pem(path: str, password: str | None) -> bytes:
    """The key as unencrypted PEM (gRPC takes no key password)."""
    data = _read(path, "private key")
    if password is None and b"ENCRYPTED" not in data:
        return data
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(data, password.encode() if password else None)
    except (ValueError, TypeError) as exc:
        raise TlsConfigError(f"the private key {path} cannot be read (a wrong or missing password?): {exc}") from None
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def grpc_credentials(tls: TlsSettings) -> Any:
    """gRPC channel credentials: root CAs (else gRPC's own roots), the client certificate for mutual TLS."""
    import grpc

    roots = tls.ca_pem.encode() if tls.ca_pem else _read(tls.ca_file, "CA file") if tls.ca_file else None
    chain = _read(tls.cert_file, "client certificate") if tls.cert_file else None
    key = private_key_pem(tls.key_file, tls.key_password) if tls.key_file else None
    return grpc.ssl_channel_credentials(root_certificates=roots, private_key=key, certificate_chain=chain)


# --- what went wrong -------------------------------------------------------------

def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and those it carries: causes, contexts, and the ones
    client libraries keep in `args` or an `exception` attribute (pika, httpx)."""
    pending, seen = [exc], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        inner = [getattr(current, "exception", None), current.__cause__, current.__context__,
                 *(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))]
        pending.extend(e for e in inner if isinstance(e, BaseException))


REFUSED_CLIENT = ("CERTIFICATE_REQUIRED", "BAD_CERTIFICATE", "UNKNOWN_CA", "CERTIFICATE_UNKNOWN", "HANDSHAKE_FAILURE",
                  "ACCESS_DENIED", "DECRYPT_ERROR")
NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "UNKNOWN_PROTOCOL", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG")


_SSL_REASON = re.compile(r"\[SSL: ([A-Z0-9_]+)\]")


def _ssl_reason(exc: BaseException) -> str | None:
    """The OpenSSL reason of an `ssl.SSLError`, or one a library kept only as text
    (pika turns the socket's error into a string inside its own)."""
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    found = _SSL_REASON.search(str(exc))
    return found.group(1) if found else None


def tls_failure(exc: BaseException) -> str | None:
    """Why a TLS handshake failed, in words, when that is what happened; else None."""
    for inner in _chain(exc):
        if isinstance(inner, ssl.SSLCertVerificationError):
            detail = inner.verify_message or inner.reason or str(inner)
            if "hostname" in detail.lower() or "ip address mismatch" in detail.lower():
                return f"the server's certificate is not for this host name ({detail})"
            return f"the server's certificate is not trusted ({detail}): give the CA that signed it, or check the address"
        if isinstance(inner, TlsConfigError):
            return str(inner)
        reason = _ssl_reason(inner)
        if reason is None or isinstance(inner, ssl.SSLEOFError):
            continue
        upper = reason.upper()
        if "CERTIFICATE_VERIFY_FAILED" in upper:
            return f"the server's certificate is not trusted ({reason}): give the CA that signed it, or check the address"
        if any(word in upper for word in REFUSED_CLIENT):
            return f"the server refused the TLS handshake ({reason}): it wants a client certificate it trusts"
        if any(word in upper for word in NOT_TLS):
            return f"the server does not speak TLS on this port ({reason}): is it a plaintext port?"
        if isinstance(inner, ssl.SSLError):
            return f"the TLS handshake failed ({reason})"
    return None


def probe(host: str, port: int, tls: TlsSettings | None, *, alpn: tuple[str, ...] = (), timeout_s: float = 3.0) -> str | None:
    """Why a TLS connection to host:port fails, from a handshake done here
    with the same settings (and a read, since a server refuses a missing
    client certificate only after a TLS 1.3 handshake); None when it works
    or the server cannot be reached at all (down is not a configuration
    error). With `tls=None` (a plaintext client) it says whether the
    server wants TLS."""
    try:
        raw = socket.create_connection((host, port), timeout=timeout_s)
    except OSError:
        return None
    with raw:
        context = ssl_context(tls) if tls is not None else ssl.create_default_context()
        if tls is None:
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        if alpn:
            context.set_alpn_protocols(list(alpn))
        try:
            with context.wrap_socket(raw, server_hostname=(tls.server_name if tls else None) or host) as wrapped:
                if tls is None:
                    return "the server speaks TLS, but the client is set for plaintext"
                wrapped.settimeout(0.5)
                try:
                    first = wrapped.recv(1)  # a refused client certificate arrives here, as an alert or a close
                except (socket.timeout, TimeoutError, ssl.SSLWantReadError):
                    return None
                if not first:
                    return ("the server closed the connection right after the TLS handshake: it "
                            + ("does not trust the client certificate" if tls.cert_file
                               else "wants a client certificate (mutual TLS)"))
        except (ssl.SSLError, OSError) as exc:
            return None if tls is None else tls_failure(exc)
    return None


CLOSED_IN_HANDSHAKE = ("SSLEOFError", "EOF occurred in violation of protocol", "UNEXPECTED_EOF")


def closed_during_tls(exc: BaseException) -> bool:
    """Whether the server hung up inside the TLS exchange: what a server that
    refuses the client's certificate (or wants one) does after a TLS 1.3
    handshake, and also what a server going down at that moment looks like;
    callers treat it as a refusal only when it happens again."""
    return any(isinstance(inner, ssl.SSLEOFError) or any(w in str(inner) for w in CLOSED_IN_HANDSHAKE)
               for inner in _chain(exc))


CLOSED_MESSAGE = ("the server closed the connection during the TLS handshake, twice: it wants a client "
                  "certificate it trusts")
