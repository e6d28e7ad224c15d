"""`watch` and `demo` without a broker: JSON log lines, clear errors, the demo's
timing arithmetic, and that stopping the demo's children leaves none behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.demo import default_start_ms, first_window_closes_at
from cli.demo_processes import ChildFailed, Children
from cli.watch import targets_from_pipeline
from cli.watch_feeds import redact_url

REPO = Path(__file__).resolve().parents[2]
NOWHERE = "127.0.0.1:1"  # nothing listens on port 1


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "RABBITMQ_URL", "IOT_LOG_FORMAT")}
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.mark.parametrize("command", [["watch", "--once"], ["demo", "--bounded-demo"]])
def test_log_format_json_gives_json_log_lines(command, tmp_path):
    done = run_cli("--log-format", "json", *command, "--bootstrap", NOWHERE, "--connect-timeout", "1",
                   *(["--log-dir", str(tmp_path)] if command[0] == "demo" else []))
    assert done.returncode == 2  # Kafka unreachable: a user error, not a crash
    lines = done.stderr.splitlines()
    assert lines[-1].startswith(f"iot-monitoring {command[0]}: Kafka at {NOWHERE} did not answer")
    assert "Traceback" not in done.stderr
    logs = [json.loads(line) for line in lines[:-1]]
    assert logs, done.stderr
    assert all(set(entry) >= {"ts", "level", "logger", "message"} for entry in logs)
    assert any(entry["logger"] == f"cli.{command[0]}" or entry["logger"] == "cli.watch" for entry in logs)
    assert any("results from topic error-count" in entry["message"] and NOWHERE in entry["message"] for entry in logs)


def test_log_format_text_is_the_default():
    done = run_cli("watch", "--once", "--bootstrap", NOWHERE, "--connect-timeout", "1")
    first = done.stderr.splitlines()[0]
    assert NOWHERE in first and not first.startswith("{")


def test_a_broken_pipeline_is_one_clear_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: streaming.tanzu.vmware.com/v1alpha1\nkind: Stream\nmetadata: {name: s}\nspec: {protocol: kafka}\n")
    for command in (["watch", "--once"], ["demo", "--bounded-demo"]):
        done = run_cli(*command, "--pipeline", str(bad))
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"iot-monitoring {command[0]}: ")
        assert "Traceback" not in done.stderr


def test_targets_follow_the_pipeline_and_the_options(tmp_path):
    from tests.support.pipeline import seed_pipeline

    path = seed_pipeline(tmp_path, "in-topic", "counts-topic", "alerts-exchange")
    targets = targets_from_pipeline(path, "kafka.example:9092", "amqp://u:p@rabbit.example:5672/%2F")
    assert (targets.results_topic, targets.late_topic) == ("counts-topic", "in-topic-late")
    assert targets.dlq_topics == ("in-topic-dlq", "counts-topic-dlq")  # the query's and the UDF stage's
    assert targets.exchange == "alerts-exchange"
    assert (targets.bootstrap, targets.rabbitmq_url) == ("kafka.example:9092", "amqp://u:p@rabbit.example:5672/%2F")


def test_redacted_url_hides_the_password_only():
    assert redact_url("amqp://guest:secret@127.0.0.1:5672/%2F") == "amqp://guest:***@127.0.0.1:5672/%2F"
    assert redact_url("amqp://127.0.0.1/%2F") == "amqp://127.0.0.1/%2F"


@pytest.mark.parametrize("now_s", [1_645_020_000, 1_645_020_059, 1_645_020_030.5])
def test_first_window_closes_after_the_next_boundary_plus_the_delay(now_s):
    now_ms = int(now_s * 1000)
    closes = first_window_closes_at(now_ms, 60_000, 3_000)
    # the next whole minute after `now`, then the 3 s of allowed out-of-orderness
    next_minute = (int(now_s) // 60 + 1) * 60
    assert closes == next_minute * 1000 + 3_000
    assert 3_000 < closes - now_ms <= 63_000


@pytest.mark.parametrize("count", [2, 12_000, 100_000])
def test_bounded_demo_events_straddle_a_window_boundary_in_the_past(count):
    now_ms = 1_645_020_017_345
    start = default_start_ms(now_ms, count, 60_000)
    last = start + count - 1  # events are 1 ms apart
    assert last < now_ms - 5 * 60_000
    assert start // 60_000 < last // 60_000  # at least two windows


def test_stopping_the_children_leaves_no_process_behind(tmp_path):
    sleeper = [sys.executable, "-c", "import time\nwhile True: time.sleep(0.1)"]
    ignores_sigint = [sys.executable, "-c", "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('up', flush=True)\nwhile True: time.sleep(0.1)"]
    with Children(tmp_path, REPO) as children:
        polite = children.start("polite", sleeper, os.environ)
        stubborn = children.start("stubborn", ignores_sigint, os.environ)
        deadline = time.monotonic() + 10
        while "up" not in (tmp_path / "stubborn.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        children.check()  # both alive
        started = time.monotonic()
        children.stop(stubborn, timeout_s=1.0)
        assert 1.0 <= time.monotonic() - started < 5
    assert stubborn.process.returncode == -9  # killed after ignoring SIGINT
    assert polite.process.returncode is not None  # stopped on leaving the block
    assert children.running == []  # both waited for, so neither is left even as a zombie


def test_a_child_that_exits_early_is_reported_with_its_log(tmp_path):
    failing = [sys.executable, "-c", "import sys; print('cannot bind port 55554'); sys.exit(3)"]
    with Children(tmp_path, REPO) as children:
        children.start("udf", failing, os.environ)
        time.sleep(0.05)
        deadline = time.monotonic() + 10
        with pytest.raises(ChildFailed) as failure:
            while time.monotonic() < deadline:
                children.check()
                time.sleep(0.05)
    assert "udf exited with 3" in str(failure.value)
    assert "cannot bind port 55554" in str(failure.value)
    with Children(tmp_path, REPO) as children, pytest.raises(ChildFailed, match="generator exited with 3"):
        children.run("generator", failing, os.environ, timeout_s=30)


def test_children_die_with_the_demo_even_on_kill_9(tmp_path):
    """Start a demo-like parent that starts a child, SIGKILL the parent: the child must go too."""
    script = (
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "from cli.demo_processes import Children\n"
        f"children = Children(Path({str(tmp_path)!r}), Path({str(REPO)!r}))\n"
        "child = children.start('sleeper', [sys.executable, '-c', 'import time\\nwhile True: time.sleep(0.1)'], os.environ)\n"
        "print(child.process.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    child_pid = int(parent.stdout.readline())
    assert Path(f"/proc/{child_pid}").exists()
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child_pid}").exists() and time.monotonic() < deadline:
        state = Path(f"/proc/{child_pid}/stat").read_text().split(")")[-1].split()[0] if Path(f"/proc/{child_pid}").exists() else "X"
        if state == "Z":
            break
        time.sleep(0.05)
    alive = Path(f"/proc/{child_pid}").exists() and Path(f"/proc/{child_pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    assert not alive
