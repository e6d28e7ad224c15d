"""Secrets kept out of everything the package writes.

One module knows what a secret is, so that `validate`, log lines, error
messages, the live view and the texts of client exceptions all hide the same
things:

- settings whose name says they hold one (`is_secret_key`: `sasl.password`,
  `ssl.key.password`, `ssl.key.pem`, `basic.auth.user.info`,
  `sasl.jaas.config`, `KAFKA_SASL_PASSWORD`, a binding's `password`, ...);
- the password part of a URL (`amqps://user:***@host`);
- the values themselves: every secret the configuration resolves (from the
  YAML, a Secret document, a binding directory, a file, the environment) is
  remembered here (`remember`), and `redact_text` replaces each occurrence
  of one, in the forms it takes inside URLs, JSON and Python reprs, so a
  client library that echoes a setting in an exception text gives nothing
  away either;
- PEM private keys and HTTP `Authorization` credentials, by their shape.

`RedactingWriter` applies `redact_text` to whatever a process writes to its
standard streams; `runtime.logs` installs it, with formatters that redact
each log record, so a print, a traceback or a third-party log line is
covered as well as the package's own messages.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any, TextIO
from urllib.parse import quote, unquote, urlsplit, urlunsplit

MASK = "***"

# Names that hold a secret, after `_normal` (lower case, `_` and `-` as `.`).
SECRET_NAMES = frozenset({
    "password", "passwd", "secret", "token", "user.info", "userinfo", "jaas.config", "key.pem", "keystore.key",
    "private.key", "tls.key", "client.secret", "oauthbearer.config", "credentials", "api.key", "auth.token",
})
# Suffixes that make a name a pointer to a secret rather than the secret (`password.file`, `ssl.key.location`).
POINTER_SUFFIXES = (".file", ".location", ".path", ".source", ".type", ".dir", ".name", ".format", ".algorithm",
                    ".method", ".mechanism", ".ttl", ".endpoint.url", ".url", ".id", ".scope")
PUBLIC_DEFAULTS = frozenset({"guest"})  # RabbitMQ's documented default user and password: masking it would only blur text
MIN_INLINE_LENGTH = 4  # shorter secrets are matched only as whole words, so that they do not shred the text

_lock = threading.Lock()
_known: set[str] = set()
_pattern: re.Pattern[str] | None = None


def _normal(key: str) -> str:
    return re.sub(r"[_\-]+", ".", key.strip().lower())


def is_secret_key(key: str) -> bool:
    """Whether a setting, option or variable of this name holds a secret."""
    name = _normal(key)
    if name.endswith(POINTER_SUFFIXES):
        return False
    return any(name == word or name.endswith("." + word) for word in SECRET_NAMES)


def remember(*values: str | None) -> None:
    """Make `redact_text` hide these values from now on (in this process)."""
    global _pattern
    fresh = {v for v in values if isinstance(v, str) and v.strip() and v not in PUBLIC_DEFAULTS} - _known
    if not fresh:
        return
    with _lock:
        for value in fresh:
            _known.update(_forms(value))
        _pattern = None


def _forms(value: str) -> set[str]:
    """The ways a value appears in text: as is, URL-quoted, JSON- and repr-escaped."""
    return {value, quote(value, safe=""), quote(value, safe="/"), json.dumps(value)[1:-1], repr(value)[1:-1]}


def remember_mapping(settings: Mapping[str, Any]) -> None:
    """Remember the values of the secret-named keys of `settings`, and URL passwords in any value."""
    for key, value in settings.items():
        if not isinstance(value, str):
            continue
        if is_secret_key(key):
            remember(value)
        remember(url_password(value))


def remember_environment(env: Mapping[str, str]) -> None:
    """Remember the secrets of the environment: secret-named variables and URL passwords."""
    remember_mapping(env)


def forget_all() -> None:
    """Tests only: start from nothing known."""
    global _pattern
    with _lock:
        _known.clear()
        _pattern = None


def url_password(text: str | None) -> str | None:
    """The password of a URL with userinfo (percent-decoded), else None."""
    if not text or "://" not in text or "@" not in text:
        return None
    try:
        parts = urlsplit(text.strip())
        password = parts.password
    except ValueError:
        return None
    return None if password is None else unquote(password)


def redact_url(url: str) -> str:
    """The URL with `***` for its password, for messages."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=f"{parts.username}:{MASK}@{host}"))
    except ValueError:
        return _URL_USERINFO.sub(_url_repl, url)


def redact_mapping(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with secret-named values masked and URL passwords removed, for display."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if is_secret_key(key) and value not in (None, ""):
            out[key] = MASK
        elif isinstance(value, str):
            out[key] = redact_text(value)
        else:
            out[key] = value
    return out


# --- text ----------------------------------------------------------------------

_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^\s:/@'\"]*):(?P<pw>[^\s@/'\"]+)@")
_KEY = r"[A-Za-z0-9_.\-]*(?:password|passwd|secret|token|user[._\-]?info|jaas[._\-]config|key[._\-]pem|keystore[._\-]key)"
_ASSIGNED = re.compile(rf"(?P<key>\b{_KEY})(?P<sep>\s*=\s*)(?:(?P<q>[\"'])(?P<value>[^\"'\n]*)|(?P<bare>[^\s,;}}\])\"']+))",
                       re.IGNORECASE)
_QUOTED = re.compile(rf"(?P<key>[\"']{_KEY}[\"'])(?P<sep>\s*:\s*)(?P<q>[\"'])(?P<value>[^\"'\n]*)", re.IGNORECASE)
_PEM_KEY = re.compile(r"-----BEGIN (?P<kind>[A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END (?P=kind)PRIVATE KEY-----|\Z)", re.DOTALL)
_AUTHORIZATION = re.compile(r"(?P<head>\b(?:Authorization|Proxy-Authorization)[\"']?\s*[:=]\s*[\"']?(?:Basic|Bearer)\s+)[A-Za-z0-9+/=._\-~]+",
                            re.IGNORECASE)


def _url_repl(match: re.Match[str]) -> str:
    return f"{match['scheme']}{match['user']}:{MASK}@"


def _value_repl(match: re.Match[str]) -> str:
    groups = match.groupdict()
    value = groups.get("bare") or groups.get("value")
    if not value or value == MASK or _normal(match["key"].strip("\"'")).endswith(POINTER_SUFFIXES):
        return match[0]
    return f"{match['key']}{match['sep']}{match['q'] or ''}{MASK}"


def _known_pattern() -> re.Pattern[str] | None:
    global _pattern
    with _lock:
        if _pattern is None and _known:
            long_ = sorted((v for v in _known if len(v) >= MIN_INLINE_LENGTH), key=len, reverse=True)
            short = sorted((v for v in _known if len(v) < MIN_INLINE_LENGTH), key=len, reverse=True)
            parts = [re.escape(v) for v in long_] + [rf"(?<![\w]){re.escape(v)}(?![\w])" for v in short]
            _pattern = re.compile("|".join(parts))
        return _pattern


def redact_text(text: str) -> str:
    """`text` with every secret in it replaced by `***`."""
    if not text:
        return text
    known = _known_pattern()
    if known is not None:
        text = known.sub(MASK, text)
    if "PRIVATE KEY-----" in text:
        text = _PEM_KEY.sub(lambda m: f"-----BEGIN {m['kind']}PRIVATE KEY----- {MASK}", text)
    if "://" in text:
        text = _URL_USERINFO.sub(_url_repl, text)
    text = _ASSIGNED.sub(_value_repl, text)
    text = _QUOTED.sub(_value_repl, text)
    return _AUTHORIZATION.sub(lambda m: m["head"] + MASK, text)


class RedactingWriter:
    """A text stream that writes through `redact_text` to the stream it wraps.

    Everything else (the encoding, `isatty`, `fileno`, `buffer`) is the
    wrapped stream's, so terminals and rich's live view work as before."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    @property
    def wrapped(self) -> TextIO:
        return self._stream

    def write(self, text: str) -> int:
        self._stream.write(redact_text(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    def writable(self) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def redacting(stream: TextIO) -> TextIO:
    """`stream` behind a `RedactingWriter` (once: a wrapped stream is returned as it is)."""
    return stream if isinstance(stream, RedactingWriter) else RedactingWriter(stream)  # type: ignore[return-value]
