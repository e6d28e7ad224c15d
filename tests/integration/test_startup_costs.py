"""What start-up pays for: one admin client per cluster, and no UDF client
libraries when no UDF stage runs (a bounded run's time includes start-up)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Callable

from connectors.kafka_admin import partition_counts, wait_for_kafka
from tests.support.pipeline import REPO, seed_pipeline


def test_one_admin_client_per_cluster_and_settings(kafka_bootstrap: str) -> None:
    first = wait_for_kafka(kafka_bootstrap, 10, {"group.id": "a"})
    assert wait_for_kafka(kafka_bootstrap, 10, {"group.id": "a"}) is first
    assert wait_for_kafka(kafka_bootstrap, 10, {"group.id": "b"}) is first  # a consumer-only setting: the same admin client
    assert wait_for_kafka(kafka_bootstrap, 10, {"client.id": "other"}) is not first


def _modules_after_building(pipeline: Path, bootstrap: str, processors: str) -> set[str]:
    probe = ("import gc, sys, dataflows.iot; dataflows.iot.flow; assert gc.get_freeze_count() > 0, 'start-up heap not frozen'; "
             "assert gc.isenabled(), 'collector left off after start-up'; "
             "print(' '.join(m for m in ('grpc', 'pika') if m in sys.modules))")
    env = dict(os.environ, IOT_PIPELINE=str(pipeline), KAFKA_BOOTSTRAP_SERVERS=bootstrap, IOT_PROCESSORS=processors,
               IOT_UDF_ADDRESS="127.0.0.1:1")
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_udf_client_libraries_load_only_for_a_udf_stage(
    tmp_path: Path, kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    pipeline = seed_pipeline(tmp_path, new_topic(), new_topic())
    assert _modules_after_building(pipeline, kafka_bootstrap, "sql") == set()
    assert _modules_after_building(pipeline, kafka_bootstrap, "all") == {"grpc", "pika"}


def test_partition_counts_name_their_topics_and_create_none(kafka_bootstrap: str, new_topic: Callable[..., str]) -> None:
    client = wait_for_kafka(kafka_bootstrap, 10)
    existing = new_topic(partitions=3)
    absent = f"absent-{uuid.uuid4().hex[:8]}"
    assert partition_counts(client, [existing, absent]) == {existing: 3}
    assert absent not in client.list_topics(timeout=10).topics  # asking about it did not auto-create it
