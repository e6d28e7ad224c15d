"""The local stack's life cycle, on ports of its own so the session's brokers
are untouched: up is idempotent, status tells the truth, down leaves nothing."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cli.local_stack import LocalKafka, LocalStack, StackConfig, StackError, pid_alive
from tests.support.ports import free_port

pytestmark = pytest.mark.broker


def _group_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split(")")[-1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def test_up_twice_status_and_down_leave_no_process(tmp_path: Path) -> None:
    cfg = StackConfig(
        home=tmp_path / "stack",
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        rabbitmq_port=free_port(),
        rabbitmq_dist_port=free_port(),
    )
    stack = LocalStack(cfg)
    try:
        first = stack.up()
        assert "Kafka started" in first[0] and "RabbitMQ started" in first[1]
        pids = (stack.kafka.running_pid(), stack.rabbitmq.running_pid())
        assert all(pids)
        groups = {pid: _group_members(pid) for pid in pids}
        assert all(groups.values())

        second = stack.up()
        assert "already running" in second[0] and "already running" in second[1]
        assert (stack.kafka.running_pid(), stack.rabbitmq.running_pid()) == pids

        status = stack.status()
        assert f"running  pid {pids[0]}" in status[0] and "answering" in status[0]
        assert f"running  pid {pids[1]}" in status[1] and "answering" in status[1]
    finally:
        down = stack.down()
    assert down == ["RabbitMQ stopped", "Kafka stopped"]
    for pid, members in groups.items():
        assert not pid_alive(pid)
        assert _group_members(pid) == [], f"left behind in group {pid}"
        assert not any(pid_alive(m) for m in members)
    status = stack.status()
    assert "stopped" in status[0] and "stopped" in status[1]


def test_port_taken_by_another_process_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        kafka = LocalKafka(StackConfig(home=tmp_path, kafka_port=port, kafka_controller_port=free_port()))
        with pytest.raises(StackError, match=f"port {port} on 127.0.0.1 is taken"):
            kafka.up()
    assert kafka.running_pid() is None
