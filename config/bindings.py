"""Where credentials come from: service bindings, Secret documents, files.

A Stream's `spec.binding` (or a ClusterStream's `spec.storage.server.binding`)
names a Kubernetes Secret, as in the Streaming Runtime. Its entries
(`type`, `host`, `port`, `username`, `password`, `uri`, `ca.crt`, ...) are
found, in this order:

1. in the directory of a `ServiceBinding` document of the same YAML that
   projects that Secret: `$SERVICE_BINDING_ROOT/<spec.name or
   metadata.name>` (the servicebinding.io layout: one file per entry), or,
   when that directory is absent, in the environment variables its
   `spec.env` names (the operator's other way to project a binding);
2. in `$SERVICE_BINDING_ROOT/<name>`, a directory of that name (the Secret
   mounted as a volume);
3. in a `Secret` document of that name in the same YAML (`data` in base64,
   `stringData` as text).

`discover(type)` finds the one binding of a type under
`$SERVICE_BINDING_ROOT` (servicebinding.io's way for an application to find
its services), for streams whose resources name none.

Every secret read here is handed to `runtime.redact`, so nothing written
later repeats it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from config.loader import FieldPath, LoadedResource, of_kind
from config.resources import Secret, ServiceBinding
from runtime import redact

MAX_ENTRY_BYTES = 1 << 20  # a binding entry is a credential or a certificate chain, never more
ROOT_VARIABLE = "SERVICE_BINDING_ROOT"

Report = Callable[[str, FieldPath], None]


@dataclass(frozen=True)
class Binding:
    """A binding's entries, and the files they were read from (a directory's)."""

    name: str
    origin: str  # for messages and `validate`: "directory /bindings/x", "Secret document x"
    entries: Mapping[str, str]
    files: Mapping[str, str] = field(default_factory=dict)

    @property
    def type(self) -> str | None:
        value = self.entries.get("type")
        return value.strip().lower() if value else None

    def get(self, *names: str) -> str | None:
        """The first of `names` the binding has (entries are matched as written)."""
        return next((self.entries[n] for n in names if self.entries.get(n)), None)

    def entry_name(self, *names: str) -> str | None:
        return next((n for n in names if self.entries.get(n)), None)

    def file_of(self, *names: str) -> str | None:
        """The path of the first of `names` that is a file of the binding's directory."""
        return next((self.files[n] for n in names if n in self.files), None)


def read_secret_file(path: str | Path, what: str) -> str:
    """A credential from a file (`*_FILE` variables, binding entries): its text
    without the trailing newline an editor or `echo` adds; remembered as a secret.
    Raises ValueError with a message that names the file, never its content."""
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > MAX_ENTRY_BYTES:
            raise ValueError(f"{what}: {file} is {size} bytes; a credential file holds one value")
        text = file.read_text(encoding="utf-8").rstrip("\r\n")
    except FileNotFoundError:
        raise ValueError(f"{what}: no file {file}") from None
    except IsADirectoryError:
        raise ValueError(f"{what}: {file} is a directory, not a file") from None
    except PermissionError:
        raise ValueError(f"{what}: {file} cannot be read (permission denied)") from None
    except UnicodeDecodeError:
        raise ValueError(f"{what}: {file} is not UTF-8 text") from None
    except OSError as exc:
        raise ValueError(f"{what}: cannot read {file}: {exc.strerror or exc}") from None
    redact.remember(text)
    return text


def _remember_entries(entries: Mapping[str, str]) -> None:
    for key, value in entries.items():
        if redact.is_secret_key(key) or key in SECRET_ENTRIES:
            redact.remember(value)
        redact.remember(redact.url_password(value))


# Entries that are secrets whatever their name says to `is_secret_key`.
SECRET_ENTRIES = frozenset({"password", "private-key", "tls.key", "client.key", "key.pem", "token", "secret"})


def read_directory(name: str, folder: Path) -> Binding:
    """A servicebinding.io directory: one file per entry. Kubernetes' own
    files of a mounted Secret (`..data` and the like) are skipped."""
    entries: dict[str, str] = {}
    files: dict[str, str] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.stat().st_size > MAX_ENTRY_BYTES:
            continue  # not a binding entry; nothing here reads it
        files[path.name] = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # a binary entry (a key store): only its path is of use
        entries[path.name] = text if "-----BEGIN" in text else text.rstrip("\r\n")
    _remember_entries(entries)
    return Binding(name, f"directory {folder}", entries, files)


class Bindings:
    """The bindings a pipeline can name: directories, ServiceBinding and Secret documents."""

    def __init__(self, loaded: Sequence[LoadedResource], env: Mapping[str, str]) -> None:
        root = env.get(ROOT_VARIABLE)
        self.root = Path(root) if root else None
        self.env = env
        self.secrets = {item.name: item.resource for item in of_kind(list(loaded), Secret)}
        self.service_bindings = [item.resource for item in of_kind(list(loaded), ServiceBinding)]
        self._cache: dict[str, Binding | None] = {}
        for secret in self.secrets.values():
            _remember_entries(secret.entries)  # type: ignore[union-attr]

    def _directory(self, name: str) -> Path | None:
        if self.root is None:
            return None
        folder = self.root / name
        return folder if folder.is_dir() else None

    def find(self, name: str, report: Report, path: FieldPath) -> Binding | None:
        """The binding `name` refers to, or None after reporting why there is none."""
        if name not in self._cache:
            self._cache[name] = self._find(name)
        found = self._cache[name]
        if found is None:
            where = (f"no directory {self.root / name}" if self.root is not None
                     else f"${ROOT_VARIABLE} is not set, so no binding directory was looked for")
            report(f"binding {name!r}: no Secret document of that name in the file and {where}", path)
        return found

    def _find(self, name: str) -> Binding | None:
        for sb in self.service_bindings:
            service = sb.spec.service  # type: ignore[union-attr]
            if service.name != name or (service.kind or "Secret") != "Secret":
                continue
            folder = self._directory(sb.spec.name or sb.metadata.name)  # type: ignore[union-attr]
            if folder is not None:
                return read_directory(name, folder)
            projected = {e.key: self.env[e.name] for e in sb.spec.env if self.env.get(e.name)}  # type: ignore[union-attr]
            if projected:
                _remember_entries(projected)
                names = ", ".join(e.name for e in sb.spec.env if self.env.get(e.name))  # type: ignore[union-attr]
                return Binding(name, f"the environment ({names}) of ServiceBinding {sb.metadata.name}", projected)
        folder = self._directory(name)
        if folder is not None:
            return read_directory(name, folder)
        secret = self.secrets.get(name)
        if secret is not None:
            return Binding(name, f"Secret document {name}", secret.entries)  # type: ignore[union-attr]
        return None

    def discover(self, kind: str) -> Binding | None:
        """The one binding directory whose `type` entry is `kind` (none when there are several)."""
        if self.root is None or not self.root.is_dir():
            return None
        found = []
        for folder in sorted(self.root.iterdir()):
            type_file = folder / "type"
            if folder.is_dir() and type_file.is_file():
                try:
                    if type_file.read_text(encoding="utf-8").strip().lower() == kind:
                        found.append(folder)
                except (OSError, UnicodeDecodeError):
                    continue
        return read_directory(found[0].name, found[0]) if len(found) == 1 else None


# Variables that may instead be given as `<NAME>_FILE`, the path of a file
# holding the value (a mounted Secret), so that the value is in no
# environment listing.
FILE_VARIABLES = (
    "RABBITMQ_URL", "RABBITMQ_USERNAME", "RABBITMQ_PASSWORD", "RABBITMQ_SSL_KEY_PASSWORD",
    "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD", "KAFKA_SSL_KEY_PASSWORD",
    "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO", "SCHEMA_REGISTRY_SSL_KEY_PASSWORD",
)


def expand_file_variables(env: Mapping[str, str], report_env: Callable[[str, str], None]) -> Mapping[str, str]:
    """The environment with each `<NAME>_FILE` of FILE_VARIABLES read into
    `<NAME>` (the file wins over the variable itself); a file that cannot
    be read is reported, naming the variable and the path."""
    read: dict[str, str] = {}
    for variable in FILE_VARIABLES:
        path = env.get(f"{variable}_FILE")
        if not path:
            continue
        try:
            read[variable] = read_secret_file(path, f"{variable}_FILE")
        except ValueError as exc:
            report_env(str(exc), f"{variable}_FILE")
    return {**env, **read} if read else env
