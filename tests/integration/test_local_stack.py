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


def test_secure_up_secures_a_running_plain_stack_and_keeps_its_data(tmp_path: Path) -> None:
    """`up --secure` on a plaintext stack restarts its brokers with the
    secured listeners; what was written before is still there, the secrets
    are files only their owner reads, and no secret is in what `up` says."""
    from confluent_kafka import Consumer, TopicPartition

    from cli.local_stack import rabbitmq_answers
    from tests.support.kafka_io import produce

    cfg = StackConfig(home=tmp_path / "stack", kafka_port=free_port(), kafka_secure_port=free_port(),
                      kafka_mtls_port=free_port(), kafka_controller_port=free_port(), rabbitmq_port=free_port(),
                      rabbitmq_tls_port=free_port(), rabbitmq_dist_port=free_port())
    stack = LocalStack(cfg)
    try:
        stack.up()
        assert not stack.secured()
        produce(cfg.kafka_bootstrap, "kept", [b"a", b"b", b"c"], partition=0)
        plain_pid = stack.kafka.running_pid()

        lines = stack.up(secure=True)
        assert stack.secured() and stack.kafka.running_pid() != plain_pid
        passwords = cfg.secure.passwords()
        said = "\n".join(lines)
        assert str(cfg.secure.env_file) in said
        assert not any(secret in said for secret in (passwords.kafka_scram, passwords.kafka_plain, passwords.rabbitmq, passwords.key))
        for how in ("scram", "plain", "mtls"):
            consumer = Consumer({**cfg.kafka_client_settings(how), "group.id": "t", "log_level": 0})
            try:
                assert consumer.get_watermark_offsets(TopicPartition("kept", 0), timeout=10) == (0, 3), how
            finally:
                consumer.close()
        assert rabbitmq_answers(cfg.secure_rabbitmq_url(), cfg.secure.tls.ca)
        assert rabbitmq_answers(cfg.rabbitmq_url)  # the plaintext listeners stay
        for secret in (cfg.secure.credentials_file, cfg.secure.env_file, cfg.secure.tls.ca_key, cfg.secure.tls.server_key,
                       cfg.secure.tls.client_key, stack.kafka.properties_file):
            assert secret.stat().st_mode & 0o077 == 0, secret
        env = cfg.secure.env_file.read_text()
        assert f"export KAFKA_BOOTSTRAP_SERVERS={cfg.kafka_secure_bootstrap}\n" in env
        assert f"export KAFKA_SASL_PASSWORD={passwords.kafka_scram}\n" in env
        assert f"export KAFKA_SSL_CA_LOCATION={cfg.secure.tls.ca}\n" in env
        assert f"export RABBITMQ_URL={cfg.secure_rabbitmq_url()}\n" in env

        again = stack.up(secure=True)  # idempotent: nothing restarts, the same passwords
        assert "already running" in again[0] and "already running" in again[1]
        assert cfg.secure.passwords() == passwords
    finally:
        stack.down()
