"""The pipeline's metrics are real only where Bytewax serves them; elsewhere
they are stand-ins that take the same updates and skip prometheus_client."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import pytest
from prometheus_client import Counter, Gauge

from runtime.metrics import (
    RABBITMQ_PUBLISHED,
    UDF_CALLS,
    CounterDeltas,
    Unserved,
    publish_watermarks,
)
from tests.support.pipeline import REPO

UPDATES = (
    "from runtime.metrics import CounterDeltas, publish_watermarks, UDF_CALLS, RABBITMQ_PUBLISHED\n"
    "CounterDeltas('p').publish({'records_in': 3, 'results_out': 1, 'not-a-metric': 2})\n"
    "publish_watermarks('p', {'t/0': 1_000}, 1_000, 2)\n"
    "UDF_CALLS.labels('p', 'OK').inc()\n"
    "RABBITMQ_PUBLISHED.labels('p').inc(4)\n"
)


def _run(code: str, **env: str) -> str:
    full_env = {k: v for k, v in os.environ.items() if k != "BYTEWAX_DATAFLOW_API_ENABLED"} | env
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=full_env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_prometheus_client_is_not_imported_when_nothing_serves_the_metrics() -> None:
    out = _run(UPDATES + "import sys; print('prometheus_client' in sys.modules)")
    assert out.split() == ["False"]


@pytest.mark.parametrize("value", ["true", ""])  # Bytewax asks only whether the variable is set
def test_served_metrics_are_registered_and_updated(value: str) -> None:
    out = _run(UPDATES + "from prometheus_client import REGISTRY, generate_latest; print(generate_latest(REGISTRY).decode())",
               BYTEWAX_DATAFLOW_API_ENABLED=value)
    assert 'iot_records_in_total{processor="p"} 3.0' in out
    assert 'iot_results_out_total{processor="p"} 1.0' in out
    assert 'iot_watermark_ms{partition="t/0",processor="p"} 1000.0' in out
    assert 'iot_open_windows{processor="p"} 2.0' in out
    assert 'iot_udf_calls_total{processor="p",status="OK"} 1.0' in out
    assert 'iot_rabbitmq_published_total{processor="p"} 4.0' in out


def test_the_project_s_updates_are_taken_in_process() -> None:
    CounterDeltas("p").publish({"records_in": 3, "late": 1})
    publish_watermarks("p", {"t/0": 1_000, "t/1": -(2**62)}, 1_000, 2)
    UDF_CALLS.labels("p", "UNAVAILABLE").inc()
    RABBITMQ_PUBLISHED.labels("p").inc(4)


@pytest.mark.parametrize("method", sorted(n for n in vars(Unserved) if not n.startswith("_")))
def test_a_stand_in_method_takes_what_prometheus_client_s_takes(method: str) -> None:
    ours = inspect.signature(getattr(Unserved, method)).parameters
    for metric in (Counter, Gauge):
        if hasattr(metric, method):
            theirs = inspect.signature(getattr(metric, method)).parameters
            required = [n for n, p in theirs.items() if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
            assert set(required) <= set(ours), (metric.__name__, method)
            assert [n for n in ours if n in theirs] == [n for n in theirs if n in ours], (metric.__name__, method)
