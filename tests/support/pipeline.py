"""Run the real dataflow as a process against a pipeline YAML made for one test."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SEED_YAML = REPO / "config" / "iot-monitoring.yaml"


def seed_pipeline(tmp_path: Path, input_topic: str, output_topic: str, exchange: str = "udf-output-error-count",
                  query: str | None = None, extra: str = "") -> Path:
    """The seed's pipeline with its topics renamed for a test (and optionally another query)."""
    text = SEED_YAML.read_text()
    text = text.replace("name: iot-monitoring\n", f"name: {input_topic}\n", 1)
    text = text.replace("name: error-count\n", f"name: {output_topic}\n", 1)
    text = text.replace("name: udf-output-error-count\n", f"name: {exchange}\n", 1)
    assert input_topic in text and output_topic in text
    if query is not None:
        start = text.index("query:")
        end = text.index("sources:", start)
        indent = " " * 8
        text = text[:start] + "query:\n" + indent + "- " + repr_yaml(query) + "\n" + " " * 4 + text[end:]
    path = tmp_path / "pipeline.yaml"
    path.write_text(text + extra)
    return path


def repr_yaml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dataflow_env(pipeline: Path, bootstrap: str, processors: str, bounded: bool, env: dict[str, str] | None) -> dict[str, str]:
    """This environment, pointed at the pipeline and the broker; `env` wins over all of it."""
    return {**os.environ, "IOT_PIPELINE": str(pipeline), "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "IOT_PROCESSORS": processors,
            "IOT_BOUNDED": "1" if bounded else "", **(env or {})}


def run_dataflow(pipeline: Path, bootstrap: str, *, bounded: bool = True, processors: str = "sql",
                 args: tuple[str, ...] = (), env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    full_env = dataflow_env(pipeline, bootstrap, processors, bounded, env)
    return subprocess.run([sys.executable, "-m", "bytewax.run", "dataflows.iot", *args], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def start_dataflow(pipeline: Path, bootstrap: str, *, processors: str = "sql", args: tuple[str, ...] = (),
                   env: dict[str, str] | None = None, bounded: bool = False) -> subprocess.Popen:
    full_env = dataflow_env(pipeline, bootstrap, processors, bounded, env)
    return subprocess.Popen([sys.executable, "-m", "bytewax.run", "dataflows.iot", *args], cwd=REPO, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def scrape(url: str, timeout_s: float) -> str:
    """The text at `url` (a metrics endpoint), waiting for it to answer at most `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
