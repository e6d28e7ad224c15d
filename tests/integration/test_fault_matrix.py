"""The fault matrix: the whole pipeline (query, error-count topic, UDF over
gRPC, RabbitMQ) run live as `python -m bytewax.run dataflows.iot` with a
recovery store, over four partitions of uneven speed, while a real process
is killed, stopped or restarted; each faulted run's outputs must equal those
of an uninterrupted run of the same input (window results, late and
dead-letter records, the UDF's messages), a repeat must be identical, and
both must be what the input alone says (`tests.support.fault_runs`).

The broker faults use a Kafka or a RabbitMQ node of their own, on free
ports, so that the session's brokers stay up for the other tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable

import pika
import pytest
from confluent_kafka import Consumer, TopicPartition

from cli.local_stack import LocalKafka, LocalRabbitMQ, StackConfig
from connectors.kafka_admin import ensure_topics, wait_for_kafka
from tests.integration.udf_servers import UdfProcess, python_udf
from tests.support.fault_runs import (IDLE_TIMEOUT_S, PARTITIONS, Feeder, Input, Outputs, durable_queue, fault_pipeline,
                                      make_input, produce_ticks)
from tests.support.pipeline import REPO, dataflow_env
from tests.support.ports import free_port

pytestmark = [pytest.mark.broker, pytest.mark.slow]

BACKLOG_TICKS = 30  # 3 minutes of event time waiting when the dataflow starts
RUN_TIMEOUT_S = 150


class Run:
    """One run of the pipeline on topics, an exchange and a recovery store of its own."""

    def __init__(self, tmp: Path, bootstrap: str, rabbitmq_url: str, udf_address: str, data: Input):
        tag = uuid.uuid4().hex[:8]
        self.tmp, self.bootstrap, self.rabbitmq_url, self.data = tmp, bootstrap, rabbitmq_url, data
        self.input, self.output, self.exchange, self.queue = f"fm-in-{tag}", f"fm-out-{tag}", f"fm-x-{tag}", f"fm-q-{tag}"
        ensure_topics(wait_for_kafka(bootstrap, timeout_s=60), {self.input: PARTITIONS})
        durable_queue(rabbitmq_url, self.exchange, self.queue)
        self.recovery = tmp / "recovery"
        self.recovery.mkdir()
        subprocess.run([sys.executable, "-m", "bytewax.recovery", str(self.recovery), "1"], check=True, cwd=REPO)
        self.pipeline = fault_pipeline(tmp, self.input, self.output, self.exchange)
        self.env = dataflow_env(self.pipeline, bootstrap, "all", False,
                                {"IOT_UDF_ADDRESS": udf_address, "RABBITMQ_URL": rabbitmq_url})
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.feeder: Feeder | None = None
        self._probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{tag}", "log_level": 0})

    # --- the dataflow process ------------------------------------------------

    def start(self) -> "Run":
        self.starts += 1
        log = open(self.tmp / f"dataflow-{self.starts}.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "bytewax.run", "dataflows.iot", "-r", str(self.recovery),
                                      "-s", "1", "-b", "0"], cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def log(self, tail: int = 4000) -> str:
        """The dataflow's output over its starts, the last `tail` characters of each (0: all)."""
        texts = ((self.tmp / f"dataflow-{i}.log").read_text(errors="replace") for i in range(1, self.starts + 1))
        return "\n".join(text[-tail:] if tail else text for text in texts)

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, f"the dataflow had already ended:\n{self.log()}"
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def close(self) -> None:
        self.stop()
        self._probe.close()

    # --- the input ----------------------------------------------------------

    def backlog(self, ticks: int) -> None:
        produce_ticks(self.bootstrap, self.input, self.data, 0, ticks)

    def feed(self, first: int = 0) -> Feeder:
        self.feeder = Feeder(self.bootstrap, self.input, self.data, first=first)
        self.feeder.start()
        return self.feeder

    # --- what has been written so far -----------------------------------------

    def written(self) -> int:
        """Records on the output topic (repeats included): cheap enough to poll every few ms."""
        try:
            meta = self._probe.list_topics(self.output, timeout=2).topics.get(self.output)
            if meta is None or meta.error is not None:
                return 0
            return sum(self._probe.get_watermark_offsets(TopicPartition(self.output, p), timeout=2)[1]
                       for p in meta.partitions)
        except Exception:  # noqa: BLE001 - the broker of a fault test may be away: nothing seen
            return 0

    def queued(self) -> int:
        try:
            connection = pika.BlockingConnection(pika.URLParameters(self.rabbitmq_url))
        except pika.exceptions.AMQPError:
            return 0
        try:
            return connection.channel().queue_declare(self.queue, passive=True).method.message_count
        finally:
            connection.close()

    def wait_until(self, condition: Callable[[], bool], what: str, timeout_s: float = 60, every_s: float = 0.01) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert self.proc is None or self.proc.poll() is None, f"the dataflow ended while waiting for {what}:\n{self.log()}"
            assert time.monotonic() < deadline, f"no {what} after {timeout_s} s:\n{self.log()}"
            time.sleep(every_s)

    def finish(self) -> Outputs:
        """Wait for the whole input, then for every output it must give, and read them."""
        assert self.feeder is not None
        self.feeder.finish()
        want = len(self.data.counts)
        self.wait_until(lambda: self.written() >= want and self.queued() >= want, "complete outputs",
                        timeout_s=RUN_TIMEOUT_S, every_s=0.5)
        time.sleep(2 * IDLE_TIMEOUT_S)  # late and dead letters are written by the same steps, in the same batches
        self.stop()
        return Outputs.read(self.bootstrap, self.input, self.output, self.rabbitmq_url, self.queue)


@pytest.fixture(scope="module")
def data() -> Input:
    return make_input()


@pytest.fixture
def udf(tmp_path: Path):
    port = free_port()
    process = UdfProcess(python_udf("uppercase", port), port, tmp_path / "udf.log").start()
    yield process
    process.stop()


@pytest.fixture
def make_run(tmp_path: Path, kafka_bootstrap: str, rabbitmq_url: str, udf: UdfProcess, data: Input):
    runs: list[Run] = []

    def make(bootstrap: str | None = None, rabbitmq: str | None = None) -> Run:
        run = Run(tmp_path, bootstrap or kafka_bootstrap, rabbitmq or rabbitmq_url, udf.address, data)
        runs.append(run)
        return run

    yield make
    for run in runs:
        run.close()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, rabbitmq_url: str, data: Input) -> Outputs:
    """The same input, fed the same way, through a run that nothing interrupts."""
    tmp = tmp_path_factory.mktemp("uninterrupted")
    port = free_port()
    udf = UdfProcess(python_udf("uppercase", port), port, tmp / "udf.log").start()
    run = Run(tmp, kafka_bootstrap, rabbitmq_url, udf.address, data)
    try:
        run.start()
        run.feed()
        outputs = run.finish()
    finally:
        run.close()
        udf.stop()
    outputs.check_against(data)
    assert sum(outputs.repeats.values()) == 0, "an uninterrupted run repeated itself"
    return outputs


def same_as_reference(outputs: Outputs, reference: Outputs, data: Input) -> None:
    outputs.check_against(data)
    assert outputs.comparable() == reference.comparable()


DOWNTIMES = {"shorter-than-idle-timeout": IDLE_TIMEOUT_S / 4, "longer-than-idle-timeout": IDLE_TIMEOUT_S * 4}


@pytest.mark.parametrize("downtime", sorted(DOWNTIMES))
@pytest.mark.parametrize("point", ["reading-a-backlog", "windows-open", "results-being-written"])
def test_sigkill_and_restart_give_the_uninterrupted_results(point: str, downtime: str, make_run, reference: Outputs,
                                                            data: Input) -> None:
    run = make_run()
    per_window = len(data.counts) // 6
    if point == "reading-a-backlog":
        run.backlog(BACKLOG_TICKS)
        run.start()
        run.wait_until(lambda: run.written() > 0, "first results of the backlog", every_s=0.002)
        run.kill()
        assert run.written() < 2 * per_window, "the backlog's windows were all written before the kill"
        run.feed(first=BACKLOG_TICKS)
    elif point == "windows-open":
        run.start()
        run.feed()
        run.wait_until(lambda: run.written() >= 2 * per_window, "two windows of results")
        time.sleep(1.3)  # between two firings: windows open, their records part read
        run.kill()
    else:
        run.start()
        run.feed()
        run.wait_until(lambda: run.written() >= 2 * per_window, "two windows of results")
        before = run.written()
        run.wait_until(lambda: run.written() > before, "the next firing", every_s=0.001)
        run.kill()
        written, queued = run.written(), run.queued()
        assert queued < written, "the UDF's messages of the firing were all out before the kill"
    assert run.feeder is not None and run.feeder.is_alive(), "the input ended before the kill"
    time.sleep(DOWNTIMES[downtime])
    run.start()
    same_as_reference(run.finish(), reference, data)


def test_sigterm_drains_exits_0_and_the_restart_goes_on_from_there(make_run, reference: Outputs, data: Input) -> None:
    """A graceful stop ends the input, finishes what was read (UDF and RabbitMQ
    included), takes a last snapshot and exits 0; the restart repeats nothing."""
    run = make_run()
    run.start()
    run.feed()
    per_window = len(data.counts) // 6
    run.wait_until(lambda: run.written() >= 2 * per_window, "two windows of results")
    assert run.proc is not None
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(30) == 0, run.log()
    text = run.log()
    assert "stopped on SIGTERM" in text and "Traceback" not in text and "stopping now" not in text, text
    assert run.written() == run.queued(), "the stop did not finish what the UDF stage had taken"
    assert run.feeder is not None and run.feeder.is_alive(), "the input ended before the stop"
    run.start()
    outputs = run.finish()
    same_as_reference(outputs, reference, data)
    assert sum(outputs.repeats.values()) == 0, f"the restart repeated what was written before the stop: {outputs.repeats}"


def test_udf_killed_and_restarted_mid_run(make_run, udf: UdfProcess, reference: Outputs, data: Input) -> None:
    run = make_run()
    run.start()
    run.feed()
    per_window = len(data.counts) // 6
    run.wait_until(lambda: run.queued() >= 2 * per_window, "two windows of messages", every_s=0.1)
    udf.kill()
    time.sleep(4)  # longer than a window's worth of input (2.5 s): a firing meets the UDF away
    assert run.proc is not None and run.proc.poll() is None, "the dataflow died with its UDF"
    udf.start()
    outputs = run.finish()
    same_as_reference(outputs, reference, data)
    log = run.log(tail=0)
    assert "is unreachable" in log and "is reachable again" in log


@pytest.fixture
def private_kafka(tmp_path: Path):
    kafka = LocalKafka(StackConfig(home=tmp_path / "kafka-stack", kafka_port=free_port(), kafka_controller_port=free_port()))
    kafka.up()
    yield kafka
    kafka.down()


def test_kafka_stopped_and_restarted_mid_run(private_kafka: LocalKafka, make_run, reference: Outputs, data: Input) -> None:
    run = make_run(bootstrap=private_kafka.cfg.kafka_bootstrap)
    run.start()
    run.feed()
    per_window = len(data.counts) // 6
    run.wait_until(lambda: run.written() >= 2 * per_window, "two windows of results")
    private_kafka.down()
    time.sleep(5)
    assert run.proc is not None and run.proc.poll() is None, "the dataflow died while Kafka was away"
    private_kafka.up()
    same_as_reference(run.finish(), reference, data)


@pytest.fixture
def private_rabbitmq(tmp_path: Path, rabbitmq_url: str):
    """Depends on `rabbitmq_url` so that the session's node, and its epmd, are up first."""
    node = LocalRabbitMQ(StackConfig(home=tmp_path / "rabbit-stack", rabbitmq_port=free_port(), rabbitmq_dist_port=free_port()))
    node.up()
    yield node
    node.down()


def test_rabbitmq_stopped_and_restarted_mid_run(private_rabbitmq: LocalRabbitMQ, make_run, reference: Outputs,
                                                data: Input) -> None:
    run = make_run(rabbitmq=private_rabbitmq.cfg.rabbitmq_url)
    run.start()
    run.feed()
    per_window = len(data.counts) // 6
    run.wait_until(lambda: run.queued() >= 2 * per_window, "two windows of messages", every_s=0.1)
    private_rabbitmq.down()
    time.sleep(4)
    assert run.proc is not None and run.proc.poll() is None, "the dataflow died while RabbitMQ was away"
    private_rabbitmq.up()
    same_as_reference(run.finish(), reference, data)
