"""Every IOT_* variable is read in runtime.settings; a value that means nothing is one clear line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runtime.settings import LogOptions, RunOptions, SettingsError, StackSettings

REPO = Path(__file__).resolve().parents[2]


def test_defaults_and_values() -> None:
    assert RunOptions.from_env({}) == RunOptions()
    options = RunOptions.from_env({"IOT_BOUNDED": "1", "IOT_PROCESSORS": "sql, p2", "IOT_BATCH_SIZE": "500",
                                   "IOT_CONNECT_TIMEOUT": "2.5", "IOT_NATIVE_KAFKA": "0", "IOT_LOG_LEVEL": "debug",
                                   "BYTEWAX_DATAFLOW_API_ENABLED": ""})
    assert (options.bounded, options.processors, options.batch_size, options.connect_timeout_s) == (True, ("sql", "p2"), 500, 2.5)
    assert options.native_kafka is False and options.metrics_served is True and options.log == LogOptions("text", "DEBUG")
    assert options.runs("sql", "x") and options.runs("udf", "p2") and not options.runs("udf", "other")


@pytest.mark.parametrize(("name", "value"), [
    ("IOT_BATCH_SIZE", "lots"), ("IOT_BATCH_SIZE", "0"), ("IOT_CONNECT_TIMEOUT", "soon"), ("IOT_CONNECT_TIMEOUT", "-1"),
    ("IOT_CONNECT_TIMEOUT", "nan"), ("IOT_BOUNDED", "maybe"), ("IOT_LOG_FORMAT", "xml"), ("IOT_LOG_LEVEL", "LOUD"),
])
def test_a_value_that_means_nothing_is_a_clear_error(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(f"{name}={value!r} is not valid: expected")):
        RunOptions.from_env({name: value})


def test_stack_ports_are_checked() -> None:
    assert StackSettings.from_env({"IOT_KAFKA_PORT": "19092"}).kafka_port == 19092
    with pytest.raises(SettingsError, match="IOT_RABBITMQ_PORT='70000'"):
        StackSettings.from_env({"IOT_RABBITMQ_PORT": "70000"})


def test_the_dataflow_start_prints_one_line_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    from dataflows.iot import start

    with pytest.raises(SystemExit) as exited:
        start({"IOT_BATCH_SIZE": "twenty"})
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "iot-monitoring: IOT_BATCH_SIZE='twenty' is not valid: expected a positive whole number of records"


def test_no_other_module_reads_an_iot_variable() -> None:
    readers = []
    for path in REPO.rglob("*.py"):
        if any(part in (".venv", "tests", "benchmarks", "target") for part in path.relative_to(REPO).parts):
            continue
        text = path.read_text()
        reads = re.search(r"""(\.get|getenv)\(\s*["']IOT_|\[["']IOT_\w+["']\](?!\s*=[^=])""", text)
        if reads and path.name != "settings.py":
            readers.append(str(path.relative_to(REPO)))
    assert readers == []
