"""The UDF client stage against real UDF processes: outages, restarts, refusals, limits;
and the SRP Processor run as `python -m bytewax.run dataflows.iot` with Kafka and RabbitMQ."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import orjson
import pytest

from connectors.udf_client import UdfCall, UdfClient, UdfFailure, UdfReply, UdfSettings
from tests.integration.udf_servers import UdfProcess, free_port, go_udf, python_script_udf, python_udf, running
from tests.support.rabbit import bound_queue

FAST = dict(initial_backoff_s=0.05, max_backoff_s=0.5, log_every_s=1.0)


def calls(n: int, start: int = 0) -> list[UdfCall]:
    return [UdfCall(orjson.dumps({"seq": i, "code": f"c{i % 7}"}), {"contentType": "application/json"}, ref=i)
            for i in range(start, start + n)]


def assert_all_uppercased(results: list, sent: list[UdfCall]) -> None:
    assert len(results) == len(sent)
    for result, call in zip(results, sent):
        assert isinstance(result, UdfReply), result
        assert result.call.ref == call.ref
        assert [o.payload for o in result.outputs] == [call.payload.decode().upper().encode()]


def test_udf_down_at_start_is_waited_for(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    udf = UdfProcess(python_udf("uppercase", port), port, tmp_path / "udf.log")
    client = UdfClient(UdfSettings(f"127.0.0.1:{port}", max_in_flight=8, **FAST))
    sent = calls(40)
    starter = threading.Timer(2.0, udf.start, kwargs={"wait": False})
    caplog.set_level(logging.INFO, logger="connectors.udf_client")
    try:
        starter.start()
        began = time.monotonic()
        results = client.call_batch(sent)
        waited = time.monotonic() - began
    finally:
        starter.cancel()
        udf.stop()
        client.close()
    assert waited >= 2.0  # nothing came back before the UDF existed
    assert_all_uppercased(results, sent)
    assert max(r.attempts for r in results) > 1
    messages = [r.getMessage() for r in caplog.records]
    assert any("is unreachable" in m for m in messages)
    assert any("reachable again" in m for m in messages)


@pytest.mark.parametrize("lang", ["python", "go"])
def test_udf_killed_mid_stream_and_restarted_loses_nothing(lang: str, tmp_path: Path) -> None:
    port = free_port()
    argv = python_udf("uppercase", port) if lang == "python" else go_udf(port)
    udf = UdfProcess(argv, port, tmp_path / "udf.log").start()
    client = UdfClient(UdfSettings(f"127.0.0.1:{port}", max_in_flight=4, **FAST))
    results: list = []
    sent: list[UdfCall] = []
    done = threading.Event()

    def stream() -> None:
        for batch in range(60):
            batch_calls = calls(50, start=batch * 50)
            sent.extend(batch_calls)
            results.extend(client.call_batch(batch_calls))
        done.set()

    worker = threading.Thread(target=stream)
    try:
        worker.start()
        time.sleep(0.3)
        assert not done.is_set(), "the stream ended before the UDF could be killed; make it longer"
        udf.kill()
        time.sleep(1.5)
        udf.start(wait=False)
        worker.join(120)
        assert done.is_set()
    finally:
        udf.stop()
        client.close()
    assert_all_uppercased(results, sent)
    assert any(r.attempts > 1 for r in results), "no call was retried: the kill happened outside the stream"


def test_error_status_for_one_message_the_rest_flow(tmp_path: Path) -> None:
    port = free_port()
    client = UdfClient(UdfSettings(f"127.0.0.1:{port}", **FAST))
    good = calls(20)
    bad = UdfCall(b"\xff not utf-8", {}, ref="bad")
    batch = good[:10] + [bad] + good[10:]
    with running(python_udf("uppercase", port), port, tmp_path / "udf.log"):
        results = client.call_batch(batch)
    client.close()
    failure = results[10]
    assert isinstance(failure, UdfFailure)
    assert failure.call.ref == "bad"
    assert failure.code == "INVALID_ARGUMENT"
    assert "UTF-8" in failure.details
    assert failure.attempts == 1  # a refusal is not retried
    assert_all_uppercased(results[:10] + results[11:], good)


def test_a_bug_in_the_udf_is_internal_and_empty_replies_are_no_output(tmp_path: Path) -> None:
    port = free_port()
    source = (
        "def fn(payload, headers):\n"
        "    if payload == b'boom':\n"
        "        raise ZeroDivisionError('division by zero')\n"
        "    if payload == b'skip':\n"
        "        return None\n"
        "    return payload * 2, {'k': headers.get('contentType', '')}\n"
    )
    client = UdfClient(UdfSettings(f"127.0.0.1:{port}", **FAST))
    batch = [UdfCall(b"ab", {"contentType": "text/plain"}), UdfCall(b"boom", {}), UdfCall(b"skip", {})]
    with running(python_script_udf(source, port), port, tmp_path / "udf.log"):
        ok, bug, skipped = client.call_batch(batch)
    client.close()
    assert [(o.payload, dict(o.headers)) for o in ok.outputs] == [(b"abab", {"k": "text/plain"})]
    assert isinstance(bug, UdfFailure) and bug.code == "INTERNAL" and "ZeroDivisionError" in bug.details
    assert isinstance(skipped, UdfReply) and skipped.outputs == ()


def test_in_flight_bound_and_deadline(tmp_path: Path) -> None:
    port = free_port()
    source = (
        "import threading, time\n"
        "lock = threading.Lock(); state = {'now': 0, 'max': 0}\n"
        "def fn(payload, headers):\n"
        "    with lock:\n"
        "        state['now'] += 1; state['max'] = max(state['max'], state['now'])\n"
        "    time.sleep(3.0 if payload == b'slow' else 0.2)\n"
        "    with lock:\n"
        "        state['now'] -= 1\n"
        "    return str(state['max']).encode(), {}\n"
    )
    with running(python_script_udf(source, port), port, tmp_path / "udf.log"):
        bounded = UdfClient(UdfSettings(f"127.0.0.1:{port}", max_in_flight=3, **FAST))
        results = bounded.call_batch([UdfCall(b"x", {}) for _ in range(12)])
        bounded.close()
        peaks = [int(r.outputs[0].payload) for r in results]
        assert max(peaks) == 3  # never more than 3 at once, and the bound was reached

        impatient = UdfClient(UdfSettings(f"127.0.0.1:{port}", deadline_s=0.5, busy_retries=1, **FAST))
        slow, fast = impatient.call_batch([UdfCall(b"slow", {}), UdfCall(b"x", {})])
        impatient.close()
    assert isinstance(slow, UdfFailure) and slow.code == "DEADLINE_EXCEEDED" and slow.attempts == 2
    assert isinstance(fast, UdfReply)


def test_one_client_shared_by_worker_threads(tmp_path: Path) -> None:
    """Bytewax runs one step object in several worker threads (`-w N`)."""
    port = free_port()
    client = UdfClient(UdfSettings(f"127.0.0.1:{port}", **FAST))
    outcome: dict[int, list] = {}
    sent = {t: calls(200, start=t * 1000) for t in range(3)}

    def work(t: int) -> None:
        outcome[t] = [r for chunk in range(0, 200, 50) for r in client.call_batch(sent[t][chunk:chunk + 50])]

    with running(python_udf("uppercase", port), port, tmp_path / "udf.log"):
        threads = [threading.Thread(target=work, args=(t,)) for t in sent]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    client.close()
    for t, batch in sent.items():
        assert_all_uppercased(outcome[t], batch)


def test_calls_of_one_key_arrive_in_order_others_run_alongside(tmp_path: Path) -> None:
    port = free_port()
    source = (
        "import random, threading, time\n"
        "lock = threading.Lock(); arrivals = {}\n"
        "def fn(payload, headers):\n"
        "    key = headers['kafka_receivedMessageKey']\n"
        "    with lock:\n"
        "        arrivals.setdefault(key, []).append(int(payload))\n"
        "        seen = list(arrivals[key])\n"
        "    time.sleep(random.uniform(0, 0.02))\n"
        "    return ','.join(map(str, seen)).encode(), {}\n"
    )
    keys = ["a", "b", "c", "d"]
    batch = [UdfCall(str(i).encode(), {"kafka_receivedMessageKey": keys[i % 4]}) for i in range(80)]
    with running(python_script_udf(source, port), port, tmp_path / "udf.log"):
        client = UdfClient(UdfSettings(f"127.0.0.1:{port}", max_in_flight=4, **FAST))
        began = time.monotonic()
        results = client.call_batch(batch)
        took = time.monotonic() - began
        client.close()
    for key in keys:
        sent = [int(c.payload) for c in batch if c.headers["kafka_receivedMessageKey"] == key]
        last = [r for r in results if r.call.headers["kafka_receivedMessageKey"] == key][-1]
        assert [int(x) for x in last.outputs[0].payload.split(b",")] == sent  # the UDF saw them in input order
    assert took < 80 * 0.02  # keys ran side by side: faster than 80 calls one by one at the worst sleep


# --- the SRP Processor as a dataflow: Kafka -> UDF -> RabbitMQ, dead letters to Kafka ----------


def flink_time(minute: int) -> str:
    return f"2022-02-16 14:{minute:02d}:00"


def expected_alerts(counts: list[dict], threshold: int, jump: float, min_count: int) -> set[tuple]:
    """The alerting sample's documented rules, applied here independently: (code, minute, severity, previous)."""
    out = set()
    by_code: dict[str, dict[int, int]] = {}
    for row in counts:  # in each code's window order
        code, minute, n = row["error_code"], int(row["window_start"][-5:-3]), row["error_count"]
        history = by_code.setdefault(code, {})
        previous = history.get(minute - 1, 0 if history and min(history) <= minute - 1 else None)
        history[minute] = n
        severity = None
        if n >= threshold:
            severity = "critical" if n >= 2 * threshold else "warning"
        elif previous and n >= min_count and n >= jump * previous:
            severity = "warning"
        if severity:
            out.add((code, minute, severity, previous))
    return out


UDFS = {
    "python-uppercase": lambda port: python_udf("uppercase", port),
    "go-uppercase": go_udf,
    "python-alerting": lambda port: python_udf("alerting", port, "--threshold", "12", "--jump-factor", "2", "--min-count", "4"),
}


@pytest.mark.broker
@pytest.mark.parametrize("udf_name", [*sorted(UDFS), "python-uppercase-starting-late", "python-uppercase-confluent-kafka"])
def test_processor_kafka_to_udf_to_rabbitmq(udf_name: str, tmp_path: Path, kafka_bootstrap: str, rabbitmq_url: str,
                                           new_topic, new_exchange) -> None:
    from confluent_kafka import Producer

    from tests.support.kafka_io import read_all
    from tests.support.pipeline import run_dataflow, seed_pipeline

    counts_topic, exchange = new_topic(partitions=2), new_exchange()
    dlq_topic = counts_topic + "-dlq"
    per_code = {"C001": [2, 5, 11, 3, 30], "C002": [1, 1, 12, 13, 25], "C003": [6, 0, 0, 4, 9]}  # 0: no errors that minute
    counts = [{"window_start": flink_time(m), "window_end": flink_time(m + 1), "error_code": code, "error_count": n}
              for m in range(5) for code, ns in per_code.items() if (n := ns[m])]
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for row in counts:  # keyed like the SQL stage's output: one code stays on one partition, in window order
        producer.produce(counts_topic, key=orjson.dumps({"error_code": row["error_code"]}), value=orjson.dumps(row),
                         headers=[("x-origin", b"test")])
    producer.produce(counts_topic, key=b'{"error_code":"BAD"}', value=b"\xff\xfe")
    assert producer.flush(30) == 0

    connection, channel, queue = bound_queue(rabbitmq_url, exchange)

    port = free_port()
    pipeline = seed_pipeline(tmp_path, "unused-input", counts_topic, exchange)
    starts_late = udf_name.endswith("-starting-late")
    reader_env = {"IOT_NATIVE_KAFKA": "0"} if udf_name.endswith("-confluent-kafka") else {}  # the other reader
    udf_name = udf_name.removesuffix("-starting-late").removesuffix("-confluent-kafka")
    udf = UdfProcess(UDFS[udf_name](port), port, tmp_path / "udf.log")
    starter = threading.Timer(4.0, udf.start, kwargs={"wait": False})
    if starts_late:  # the dataflow starts first and must wait for its sidecar
        starter.start()
    else:
        udf.start()
    try:
        result = run_dataflow(pipeline, kafka_bootstrap, processors="udf",
                              env={"IOT_UDF_ADDRESS": f"127.0.0.1:{port}", "RABBITMQ_URL": rabbitmq_url, **reader_env})
    finally:
        starter.cancel()
        udf.stop()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    if starts_late:
        assert "is unreachable" in result.stderr + result.stdout
        assert "reachable again" in result.stderr + result.stdout

    got = {}
    for method, props, body in channel.consume(queue, inactivity_timeout=3):
        if method is None:
            break
        assert props.message_id not in got, "a message was delivered twice"
        got[props.message_id] = (method.routing_key, body, props.headers or {}, props.delivery_mode)
        channel.basic_ack(method.delivery_tag)
    connection.close()
    assert all(mode == 2 for _, _, _, mode in got.values())

    if udf_name == "python-alerting":
        received = set()
        for routing_key, body, headers, _ in got.values():
            alert = orjson.loads(body)
            assert routing_key == alert["error_code"]
            assert headers == {"contentType": "application/json"}
            received.add((alert["error_code"], int(alert["window_start"][-5:-3]), alert["severity"], alert["previous_count"]))
        assert len(received) == len(got) >= 5  # the scenario raises several alerts, each once
        assert received == expected_alerts(counts, threshold=12, jump=2, min_count=4)
    else:
        expected = {(row["error_code"], orjson.dumps(row).decode().upper().encode()) for row in counts}
        assert {(rk, body) for rk, body, _, _ in got.values()} == expected
        expected_headers = {"x-udf-lang": "go"} if udf_name.startswith("go") else {}
        assert all(headers == expected_headers for _, _, headers, _ in got.values())

    dead = read_all(kafka_bootstrap, dlq_topic, expect=1)
    assert len(dead) == 1
    key, value, headers, _, _ = dead[0]
    assert (key, value) == (b'{"error_code":"BAD"}', b"\xff\xfe")
    status = dict(headers)["x-udf-status"]
    assert status == b"INVALID_ARGUMENT"
