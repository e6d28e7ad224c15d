"""The process's own settings: every `IOT_*` variable is read here, once.

`RunOptions.from_env` turns the environment into one frozen object that the
dataflow's start-up passes down; nothing below it reads `os.environ`. A value
that does not parse is a `SettingsError` naming the variable, which the entry
points print as one line (never a traceback).

Broker addresses and credentials (`KAFKA_BOOTSTRAP_SERVERS`, `RABBITMQ_URL`,
...) belong to the pipeline's resources and are resolved by `config.resolve`,
which is handed the same environment mapping.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Mapping, TypeVar

T = TypeVar("T")

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(ValueError):
    """An environment variable holds a value that does not mean anything here."""


def environment() -> Mapping[str, str]:
    """The process environment, as the one mapping settings are read from."""
    return os.environ


def _read(env: Mapping[str, str], name: str, parse: Callable[[str], T], default: T, expected: str) -> T:
    text = env.get(name)
    if text is None or not text.strip():
        return default
    try:
        return parse(text.strip())
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not valid: expected {expected}") from None


def _flag(text: str) -> bool:
    lowered = text.lower()
    if lowered in TRUE:
        return True
    if lowered in FALSE:
        return False
    raise ValueError(text)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(text)
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError(text)
    return value


def _choice(options: tuple[str, ...], upper: bool = False) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.upper() if upper else text.lower()
        if value not in options:
            raise ValueError(text)
        return value

    return parse


@dataclass(frozen=True)
class LogOptions:
    """How the process logs: `IOT_LOG_FORMAT` (text | json), `IOT_LOG_LEVEL`."""

    format: str = "text"
    level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "LogOptions":
        env = environment() if env is None else env
        return cls(
            format=_read(env, "IOT_LOG_FORMAT", _choice(LOG_FORMATS), "text", "text or json"),
            level=_read(env, "IOT_LOG_LEVEL", _choice(LOG_LEVELS, upper=True), "INFO", ", ".join(LOG_LEVELS)),
        )


@dataclass(frozen=True)
class RunOptions:
    """How to run the pipeline, beside what the YAML says.

    The reader and UDF knobs here are the defaults; a Processor's attributes
    override them for its own stages (`config.resolve`)."""

    pipeline_path: str | None = None  # IOT_PIPELINE; None: the built-in pipeline
    bounded: bool = False  # IOT_BOUNDED
    processors: tuple[str, ...] = ("all",)  # IOT_PROCESSORS
    udf_address: str | None = None  # IOT_UDF_ADDRESS
    connect_timeout_s: float = 30.0  # IOT_CONNECT_TIMEOUT
    batch_size: int = 20000  # IOT_BATCH_SIZE
    native_kafka: bool = True  # IOT_NATIVE_KAFKA (0: confluent-kafka's reader)
    metrics_served: bool = False  # BYTEWAX_DATAFLOW_API_ENABLED is set (Bytewax then serves /metrics)
    log: LogOptions = LogOptions()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "RunOptions":
        env = environment() if env is None else env
        processors = tuple(p.strip() for p in env.get("IOT_PROCESSORS", "all").split(",") if p.strip())
        return cls(
            pipeline_path=env.get("IOT_PIPELINE") or None,
            bounded=_read(env, "IOT_BOUNDED", _flag, False, "1 or 0"),
            processors=processors or ("all",),
            udf_address=env.get("IOT_UDF_ADDRESS") or None,
            connect_timeout_s=_read(env, "IOT_CONNECT_TIMEOUT", _positive_float, 30.0, "a positive number of seconds"),
            batch_size=_read(env, "IOT_BATCH_SIZE", _positive_int, 20000, "a positive whole number of records"),
            native_kafka=_read(env, "IOT_NATIVE_KAFKA", _flag, True, "1 or 0"),
            metrics_served=metrics_served(env),
            log=LogOptions.from_env(env),
        )

    def runs(self, kind: str, name: str) -> bool:
        """Whether this run includes the Processor `name` of `kind` (sql | udf)."""
        return "all" in self.processors or kind in self.processors or name in self.processors


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise ValueError(text)
    return value


@dataclass(frozen=True)
class StackSettings:
    """The local broker stack's folder and loopback ports (`iot-monitoring stack`)."""

    home: str | None = None  # IOT_STACK_DIR; None: .stack/ at the repository root
    kafka_port: int = 9092  # IOT_KAFKA_PORT
    kafka_secure_port: int = 9093  # IOT_KAFKA_SECURE_PORT: SASL_SSL
    kafka_mtls_port: int = 9094  # IOT_KAFKA_MTLS_PORT: TLS with client certificates
    kafka_controller_port: int = 9095  # IOT_KAFKA_CONTROLLER_PORT
    rabbitmq_port: int = 5672  # IOT_RABBITMQ_PORT
    rabbitmq_tls_port: int = 5671  # IOT_RABBITMQ_TLS_PORT
    rabbitmq_dist_port: int = 25672  # IOT_RABBITMQ_DIST_PORT
    ready_timeout_s: float = 90.0  # IOT_STACK_TIMEOUT: how long `stack up` waits for a broker

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "StackSettings":
        env = environment() if env is None else env
        ports = {
            "kafka_port": ("IOT_KAFKA_PORT", 9092),
            "kafka_secure_port": ("IOT_KAFKA_SECURE_PORT", 9093),
            "kafka_mtls_port": ("IOT_KAFKA_MTLS_PORT", 9094),
            "kafka_controller_port": ("IOT_KAFKA_CONTROLLER_PORT", 9095),
            "rabbitmq_port": ("IOT_RABBITMQ_PORT", 5672),
            "rabbitmq_tls_port": ("IOT_RABBITMQ_TLS_PORT", 5671),
            "rabbitmq_dist_port": ("IOT_RABBITMQ_DIST_PORT", 25672),
        }
        return cls(
            home=env.get("IOT_STACK_DIR") or None,
            ready_timeout_s=_read(env, "IOT_STACK_TIMEOUT", _positive_float, 90.0, "a positive number of seconds"),
            **{field: _read(env, name, _port, default, "a TCP port (1-65535)") for field, (name, default) in ports.items()},
        )


def pipeline_path(env: Mapping[str, str] | None = None) -> str | None:
    """`IOT_PIPELINE`, the pipeline YAML the commands default to (None: the built-in one)."""
    env = environment() if env is None else env
    return env.get("IOT_PIPELINE") or None


def metrics_served(env: Mapping[str, str] | None = None) -> bool:
    """Whether Bytewax serves /metrics: it checks that the variable is set, whatever its value."""
    env = environment() if env is None else env
    return "BYTEWAX_DATAFLOW_API_ENABLED" in env


# The UDF channel's TLS for the built-in pipeline: the fallback of a
# Processor's `srp.grpc.tls.*` attributes (`config.connections.udf_tls`).
UDF_TLS_VARIABLES = {
    "IOT_UDF_TLS": "enabled",  # 1: TLS with the system's CAs (or the CA below); 0: plaintext
    "IOT_UDF_TLS_CA": "ssl.ca.location",
    "IOT_UDF_TLS_CERT": "ssl.certificate.location",
    "IOT_UDF_TLS_KEY": "ssl.key.location",
    "IOT_UDF_TLS_SERVER_NAME": "server.name",
}


def udf_tls_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The `IOT_UDF_TLS*` variables that are set, by name (checked where they are layered)."""
    env = environment() if env is None else env
    return {name: env[name] for name in UDF_TLS_VARIABLES if env.get(name)}
