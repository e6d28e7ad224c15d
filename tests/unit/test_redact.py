"""What `runtime.redact` hides, and the logging set-up that applies it to
everything a process writes (text and JSON log lines, prints, tracebacks)."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from runtime import redact
from runtime.logs import FatalError, JsonLineFormatter, RedactingFormatter, fatal_in

REPO = Path(__file__).resolve().parents[2]
SECRET = "Zq9-secret/value@x"


@pytest.fixture(autouse=True)
def fresh() -> None:
    redact.forget_all()
    yield
    redact.forget_all()


@pytest.mark.parametrize("key", ["sasl.password", "ssl.key.password", "ssl.key.pem", "basic.auth.user.info",
                                 "sasl.jaas.config", "value.avro-confluent.basic-auth.user-info", "KAFKA_SASL_PASSWORD",
                                 "RABBITMQ_PASSWORD", "sasl.oauthbearer.client.secret", "private-key", "tls.key",
                                 "ssl.keystore.password", "bearer-auth.token"])
def test_secret_keys(key: str) -> None:
    assert redact.is_secret_key(key)


@pytest.mark.parametrize("key", ["sasl.username", "ssl.key.location", "RABBITMQ_PASSWORD_FILE", "ssl.ca.location",
                                 "basic-auth.credentials-source", "sasl.mechanism", "host", "ssl.certificate.pem"])
def test_keys_that_are_not_secrets(key: str) -> None:
    assert not redact.is_secret_key(key)


def test_remembered_values_are_masked_in_every_form() -> None:
    redact.remember(SECRET)
    quoted = "Zq9-secret%2Fvalue%40x"
    for text in (f"plain {SECRET} text", f"amqp://u:{quoted}@h/", f'{{"v": "{SECRET}"}}', repr({"v": SECRET})):
        out = redact.redact_text(text)
        assert SECRET not in out and quoted not in out and redact.MASK in out, out


def test_shapes_are_masked_without_knowing_the_values() -> None:
    cases = {
        "amqps://iot:hunter22@rabbit:5671/%2F": "amqps://iot:***@rabbit:5671/%2F",
        "sasl.password=hunter22 sasl.username=bob": "sasl.password=*** sasl.username=bob",
        "{'sasl.password': 'hunter22'}": "{'sasl.password': '***'}",
        'password="hunter22";': 'password="***";',
        "Authorization: Basic dXNlcjpwYXNz": "Authorization: Basic ***",
        "-----BEGIN PRIVATE KEY-----\nMIIabc\n-----END PRIVATE KEY-----\nafter": "-----BEGIN PRIVATE KEY----- ***\nafter",
        "RABBITMQ_PASSWORD_FILE=/run/secrets/x": "RABBITMQ_PASSWORD_FILE=/run/secrets/x",
        "ssl.key.location=/etc/key.pem": "ssl.key.location=/etc/key.pem",
    }
    for text, expected in cases.items():
        assert redact.redact_text(text) == expected


def test_short_secrets_are_masked_as_whole_words_only() -> None:
    redact.remember("ab1")
    assert redact.redact_text("x ab1 y ab12 ab1") == "x *** y ab12 ***"


def test_mapping_display_and_environment() -> None:
    shown = redact.redact_mapping({"sasl.password": "s3", "sasl.username": "u", "url": "http://u:p4ss@h"})
    assert shown == {"sasl.password": "***", "sasl.username": "u", "url": "http://u:***@h"}
    redact.remember_environment({"KAFKA_SASL_PASSWORD": "env-secret", "RABBITMQ_URL": "amqp://u:url-secret@h/",
                                 "PATH": "/usr/bin"})
    assert redact.redact_text("env-secret url-secret /usr/bin") == "*** *** /usr/bin"


def record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord("t", logging.WARNING, __file__, 1, message, args, info)


def raised(message: str) -> BaseException:
    try:
        raise RuntimeError(message)
    except RuntimeError as exc:
        return exc


def test_text_and_json_log_lines_are_masked() -> None:
    redact.remember(SECRET)
    exc = raised(f"config was {{'sasl.password': '{SECRET}'}}")
    text = RedactingFormatter("%(message)s").format(record("connecting with %s", SECRET, exc=exc))
    assert SECRET not in text and "connecting with ***" in text and "Traceback" in text
    line = orjson.loads(JsonLineFormatter().format(record("url %s", f"amqp://u:{SECRET}@h", exc=exc)))
    assert line["message"] == "url amqp://u:***@h"
    assert SECRET not in line["exception"]


def test_the_writer_masks_and_keeps_the_streams_manners() -> None:
    redact.remember(SECRET)
    target = io.StringIO()
    writer = redact.redacting(target)
    assert redact.redacting(writer) is writer  # wrapped once
    print(f"a {SECRET} b", file=writer)
    assert target.getvalue() == "a *** b\n"
    assert writer.isatty() is False and writer.getvalue() == target.getvalue()


def test_a_fatal_error_is_found_behind_the_errors_that_wrap_it() -> None:
    fatal = FatalError("refused")
    try:
        try:
            raise fatal
        except FatalError as inner:
            raise RuntimeError("error calling step") from inner
    except RuntimeError as outer:
        assert fatal_in(outer) is fatal
    assert fatal_in(ValueError("x")) is None


def test_a_process_writes_no_secret_and_reports_a_fatal_error_in_one_line() -> None:
    """A real interpreter: logging configured, a print, a log line, then an
    uncaught FatalError wrapped in another exception, as Bytewax wraps a step's."""
    program = f"""
import logging, os
from runtime.logs import configure_logging, FatalError
configure_logging("json")
print("printed", os.environ["KAFKA_SASL_PASSWORD"])
logging.getLogger("x").warning("logged amqp://u:%s@h", os.environ["KAFKA_SASL_PASSWORD"])
try:
    raise FatalError("registry refused user:" + os.environ["KAFKA_SASL_PASSWORD"])
except FatalError as exc:
    raise RuntimeError("error in step") from exc
"""
    env = {"KAFKA_SASL_PASSWORD": SECRET, "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", program], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert SECRET not in done.stdout + done.stderr
    assert done.stdout == "printed ***\n"
    lines = done.stderr.splitlines()
    assert orjson.loads(lines[0])["message"] == "logged amqp://u:***@h"
    assert lines[1:] == ["iot-monitoring: registry refused user:***"]
