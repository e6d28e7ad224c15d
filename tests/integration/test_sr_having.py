"""HAVING over a windowed count with event time from the Kafka record
timestamp (the anomaly-detection shape), end to end on real Kafka: the
`> 5` / `>= 5` boundary, the accounting identity with suppressed groups,
and `debugExplain` / `debugQuery` acted on. Expected results are computed
here from Flink SQL's rules (docs/semantics.md), record by record."""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import orjson
import pytest

from engine.serde import encode_confluent_avro, format_timestamp_ms
from engine.serde.timestamps import parse_timestamp_ms
from tests.support.kafka_io import produce, read_all
from tests.support.pipeline import run_dataflow
from tests.support.shapes import shape

pytestmark = pytest.mark.broker

BASE = 1_645_020_000_000  # 2022-02-16 14:00:00 UTC
WINDOW_MS, DELAY_MS = 10_000, 2_000  # login-watch.yaml: TUMBLE 10 s, watermark seen_at - 2 s
QUERY = ("INSERT INTO [[STREAM:login-bursts-stream]] SELECT window_start, window_end, account, COUNT(*) AS attempts "
         "FROM TABLE(TUMBLE(TABLE [[STREAM:logins-stream]], DESCRIPTOR(seen_at), INTERVAL '10' SECONDS)) "
         "GROUP BY window_start, window_end, account HAVING COUNT(*) {op} 5")


def attempts(seed: int) -> list[tuple[str, int]]:
    """(account, Kafka timestamp): per window, accounts with exactly 4, 5, 6 and 9 attempts, a little out
    of order (less than the watermark delay), then two stragglers a window behind the watermark."""
    rng = random.Random(seed)
    out: list[tuple[str, int]] = []
    for w in range(4):
        start = BASE + w * WINDOW_MS
        window = [(f"acct-{n}", start + rng.randrange(WINDOW_MS)) for n in (4, 5, 6, 9) for _ in range(n)]
        window.sort(key=lambda a: a[1])
        for i in range(len(window) - 1):  # swap neighbours: out of order by less than the delay
            if rng.random() < 0.3 and window[i + 1][1] - window[i][1] < DELAY_MS:
                window[i], window[i + 1] = window[i + 1], window[i]
        out += window
    out += [("acct-5", BASE + 5), ("acct-6", BASE + WINDOW_MS + 7)]  # their windows fired long ago: late
    return out


def flink_results(rows: list[tuple[str, int]], passes) -> tuple[dict, Counter, int]:
    """What Flink emits: per (window, account) the count of the rows that were not late (a row is late when
    its window's end - 1 <= the watermark before it, the watermark being the largest timestamp so far - 2 s)."""
    counts: Counter = Counter()
    late, largest = 0, None
    for account, ts in rows:
        start = ts - ts % WINDOW_MS
        if largest is not None and start + WINDOW_MS - 1 <= largest - DELAY_MS:
            late += 1
        else:
            counts[(start, account)] += 1
        largest = ts if largest is None else max(largest, ts)
    emitted = {key: n for key, n in counts.items() if passes(n)}
    return emitted, counts, late


def produce_attempts(bootstrap: str, topic: str, schema: str, rows: list[tuple[str, int]], garbage_at: set[int]) -> int:
    values = encode_confluent_avro(schema, 1, [{"account": a, "origin": "10.0.0.1", "client": "web"} for a, _ in rows])
    stamps = [ts for _, ts in rows]
    for i in sorted(garbage_at):  # at these positions of what is sent
        values.insert(i, b"\x00\x00\x00\x00\x01\xff not avro")
        stamps.insert(i, BASE)
    return produce(bootstrap, topic, values, partition=0, timestamps=stamps)


def totals(stderr: str, processor: str) -> dict[str, int]:
    line = next(line for line in stderr.splitlines() if f"query {processor}: end of input:" in line)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line.split("end of input:", 1)[1])}


@pytest.mark.parametrize("op, passes", [(">", lambda n: n > 5), (">=", lambda n: n >= 5)])
def test_having_boundary_on_kafka_timestamp_event_time(op: str, passes, tmp_path: Path, kafka_bootstrap: str, new_topic) -> None:
    run = shape(tmp_path, "login-watch.yaml", queries={"login-burst-detection": QUERY.format(op=op)})
    pipeline = run.pipeline()
    source, sink = run.topic("logins-stream"), run.topic("login-bursts-stream")
    new_topic(name=source)
    rows = attempts(seed=len(op))
    garbage = {3, 40}
    sent = produce_attempts(kafka_bootstrap, source, pipeline.stream("logins-stream").avro_schema_json, rows, garbage)

    result = run_dataflow(run.path, kafka_bootstrap, env={"IOT_LOG_LEVEL": "DEBUG"})
    assert result.returncode == 0, result.stderr[-3000:]

    emitted, counted, late = flink_results(rows, passes)
    got = {}
    for key, value, headers, _, _ in read_all(kafka_bootstrap, sink):
        row = orjson.loads(value)
        assert orjson.loads(key) == {"account": row["account"]}
        start = parse_timestamp_ms(row["window_start"])
        assert dict(headers)["windowStartTime"] == str(start).encode()
        got[(start, row["account"])] = row["attempts"]
    assert got == emitted
    # the boundary itself: 5 attempts pass `>= 5` only; 4 never, 6 always
    assert any(n == 5 for n in got.values()) == (op == ">=")
    assert min(got.values()) >= 5 and any(n == 6 for n in got.values())

    # every record accounted for once, with the groups HAVING left out still counted
    t = totals(result.stderr, "login-burst-detection")
    assert t["records_in"] == sent == t["filtered"] + t["counted"] + t["late"] + t["dead_lettered"]
    assert (t["counted"], t["late"], t["dead_lettered"]) == (sum(counted.values()), late, len(garbage))
    assert t["results_suppressed"] == len(counted) - len(emitted)
    assert len(read_all(kafka_bootstrap, source + "-late")) == late
    assert len(read_all(kafka_bootstrap, source + "-dlq")) == len(garbage)

    # debugExplain "2" (its query) at start, debugQuery's rows at debug level
    assert "of a fired window, emit only the groups where COUNT(*) " + op + " 5" in result.stderr
    logged = re.findall(r"login-burst-detection login-bursts-stream: (.*)", result.stderr)
    assert len(logged) == len(emitted)
    first = min(emitted)
    assert (f"window_start='{format_timestamp_ms(first[0])}', window_end='{format_timestamp_ms(first[0] + WINDOW_MS)}', "
            f"account='{first[1]}', attempts={emitted[first]}") in logged

