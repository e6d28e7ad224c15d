"""The top-k-songs chain in one dataflow, end to end on real Kafka and
RabbitMQ: a join of a filtered subquery (event time from the Kafka
timestamp) -> an intermediate Stream -> a windowed count with Window Top-N
-> an upsert-kafka Stream -> a UDF -> RabbitMQ (tests/support/sr_shapes/top-tracks.yaml).

Expected rows come from Flink SQL's rules (docs/semantics.md), computed
here: the join's pairs, the intermediate Stream's own watermark, the count
per window, and the first 3 per window and style by count, ties broken by
the remaining selected columns ascending."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from engine.serde import encode_confluent_avro, format_timestamp_ms
from tests.integration.udf_servers import UdfProcess, free_port, python_udf
from tests.support.rabbit import bound_queue
from tests.support.kafka_io import produce, read_all
from tests.support.pipeline import REPO, run_dataflow, start_dataflow
from tests.support.shapes import Shape, shape

pytestmark = pytest.mark.broker

BASE = 1_645_020_000_000  # a window start (30 s windows)
WINDOW_MS, PLAYS_DELAY_MS, MIN_LISTEN_MS = 30_000, 1_000, 20_000
TRACKS = {1: ("Anthem", "rock"), 2: ("Ballad", "rock"), 3: ("Chorus", "rock"), 4: ("Drift", "rock"), 5: ("Echo", "rock"),
          6: ("Fable", "jazz"), 7: ("Groove", "jazz"), 8: ("Hush", "jazz")}
FAST = {"table.exec.source.idle-timeout": "2 s"}  # quiet input closes the last window soon in a live run


def listens(seed: int, windows: int) -> list[tuple[int, int | None, int]]:
    """(track, listened ms, Kafka timestamp), window after window, shuffled within each window. The first
    window has ties at the edge of the top 3 (rock: 4, 4, 2, 2, 1; jazz: 3, 3, 3); later ones are random.
    Short listens (filtered by the subquery), listens without a duration and of an unknown track are mixed in."""
    rng = random.Random(seed)
    out = []
    for w in range(windows):
        counts = {1: 4, 2: 4, 3: 2, 4: 2, 5: 1, 6: 3, 7: 3, 8: 3} if w == 0 else {t: rng.randrange(6) for t in TRACKS}
        rows = [(t, MIN_LISTEN_MS + rng.randrange(100_000), 0) for t, n in counts.items() for _ in range(n)]
        rows += [(rng.choice(list(TRACKS)), rng.randrange(MIN_LISTEN_MS), 0) for _ in range(3)]
        rows += [(2, None, 0), (99, 40_000, 0)]
        rng.shuffle(rows)
        start = BASE + w * WINDOW_MS
        stamps = sorted(rng.sample(range(start, start + WINDOW_MS - 1_500), len(rows)))
        rng.shuffle(stamps)  # out of order within the window (less than the intermediate Stream's delay of lateness)
        out += [(t, ms, ts) for (t, ms, _), ts in zip(rows, stamps)]
    return out


def flink_top_tracks(rows: list[tuple[int, int | None, int]]) -> set[bytes]:
    """The JSON values Flink writes to the Top-N Stream for these listens, read in this order after the tracks."""
    plays = [(t, ts) for t, ms, ts in rows if ms is not None and ms >= MIN_LISTEN_MS and t in TRACKS]
    counts: Counter = Counter()
    largest = None
    for track, ts in plays:  # the intermediate Stream: one partition in the join's order, watermark - 1 s
        start = ts - ts % WINDOW_MS
        if largest is None or start + WINDOW_MS - 1 > largest - PLAYS_DELAY_MS:
            counts[(start, track)] += 1
        largest = ts if largest is None else max(largest, ts)
    out = set()
    for start in {s for s, _ in counts}:
        for style in ("rock", "jazz"):
            ranked = sorted(((-n, t, TRACKS[t][0]) for (s, t), n in counts.items() if s == start and TRACKS[t][1] == style))
            for minus_n, track, title in ranked[:3]:
                out.add(orjson.dumps({"window_start": format_timestamp_ms(start), "window_end": format_timestamp_ms(start + WINDOW_MS),
                                      "track_id": track, "title": title, "style": style, "track_play_count": -minus_n}))
    return out


def chain(tmp_path: Path, new_topic) -> Shape:
    run = shape(tmp_path, "top-tracks.yaml", attributes={"top-tracks-aggregate": FAST})
    for stream in ("tracks-stream", "listens-stream"):
        new_topic(name=run.topic(stream))
    return run


def produce_tracks(bootstrap: str, run: Shape) -> None:
    schema = run.pipeline().stream("tracks-stream").avro_schema_json
    rows = [{"track_id": t, "title": title, "record": None, "band": "The Band", "style": style} for t, (title, style) in TRACKS.items()]
    produce(bootstrap, run.topic("tracks-stream"), encode_confluent_avro(schema, 1, rows), partition=0)


def produce_listens(bootstrap: str, run: Shape, rows: list[tuple[int, int | None, int]], extra: list[bytes] = ()) -> None:
    schema = run.pipeline().stream("listens-stream").avro_schema_json
    values = encode_confluent_avro(schema, 1, [{"track_id": t, "listened_ms": ms} for t, ms, _ in rows]) + list(extra)
    produce(bootstrap, run.topic("listens-stream"), values, partition=0, timestamps=[ts for *_, ts in rows] + [BASE] * len(extra))


def recovery_store(tmp_path: Path) -> tuple[str, ...]:
    store = tmp_path / "recovery"
    store.mkdir()
    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(store), "1"], check=True, cwd=REPO)
    return ("-r", str(store), "-s", "1", "-b", "0")


def test_top_tracks_chain_bounded_through_the_udf_to_rabbitmq(tmp_path: Path, kafka_bootstrap: str, rabbitmq_url: str,
                                                              new_topic) -> None:
    run = chain(tmp_path, new_topic)
    exchange = run.topic("charts-out-stream")
    connection, channel, queue = bound_queue(rabbitmq_url, exchange)

    port = free_port()
    udf = UdfProcess(python_udf("uppercase", port), port, tmp_path / "udf.log").start()
    args = recovery_store(tmp_path)
    env = {"IOT_UDF_ADDRESS": f"127.0.0.1:{port}", "RABBITMQ_URL": rabbitmq_url}
    rows = listens(seed=3, windows=3)
    try:
        produce_tracks(kafka_bootstrap, run)  # the first run keeps the tracks in the join's state
        first = run_dataflow(run.path, kafka_bootstrap, processors="all", args=args, env=env)
        assert first.returncode == 0, first.stderr[-3000:]
        produce_listens(kafka_bootstrap, run, rows, extra=[b"\x00\x00\x00\x00\x01\xff"])
        result = run_dataflow(run.path, kafka_bootstrap, processors="all", args=args, env=env)
    finally:
        udf.stop()
    assert result.returncode == 0, result.stderr[-3000:]

    expected = flink_top_tracks(rows)
    top = read_all(kafka_bootstrap, run.topic("top-tracks-per-style-stream"))
    assert {value for _, value, _, _, _ in top} == expected
    assert len(top) == len(expected)  # final, emitted once per window
    for key, value, _, _, _ in top:  # upsert-kafka: keyed by the primary key
        row = orjson.loads(value)
        assert orjson.loads(key) == {k: row[k] for k in ("window_start", "window_end", "track_id", "style")}
    ties = [orjson.loads(v) for v in expected if orjson.loads(v)["window_start"] == format_timestamp_ms(BASE)]
    assert sorted((r["style"], r["track_id"]) for r in ties) == [("jazz", 6), ("jazz", 7), ("jazz", 8), ("rock", 1), ("rock", 2), ("rock", 3)]

    plays = read_all(kafka_bootstrap, run.topic("track-plays-stream"))  # the intermediate Stream is written too
    joined = [(t, ts) for t, ms, ts in rows if ms is not None and ms >= MIN_LISTEN_MS and t in TRACKS]
    assert len(plays) == len(joined)
    assert orjson.loads(plays[0][1])["heard_at"] == format_timestamp_ms(joined[0][1])

    got = {}
    for method, props, body in channel.consume(queue, inactivity_timeout=3):
        if method is None:
            break
        got[props.message_id] = body
        channel.basic_ack(method.delivery_tag)
    connection.close()
    assert sorted(got.values()) == sorted(v.decode().upper().encode() for v in expected)

    join_totals = totals(result.stderr, "track-plays-join")
    assert join_totals["records_in"] == len(TRACKS) + len(rows) + 1 == (
        join_totals["filtered"] + join_totals["counted"] + join_totals["dead_lettered"])
    aggregate = totals(result.stderr, "top-tracks-aggregate")
    assert aggregate["records_in"] == aggregate["counted"] == len(joined)  # everything the join wrote, before the end
    assert aggregate["results_out"] == len(expected)


def totals(stderr: str, processor: str) -> dict[str, int]:
    line = [line for line in stderr.splitlines() if f"query {processor}: end of input:" in line][-1]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line.split("end of input:", 1)[1])}


def test_kill_9_with_join_state_and_top_n_windows_open_gives_the_same_results(tmp_path: Path, kafka_bootstrap: str,
                                                                              new_topic) -> None:
    """A live run of the chain (the UDF stage left out), fed over time, killed with SIGKILL while the join
    holds its tracks and Top-N windows are open, restarted on the same recovery store: the same Top-N rows,
    each re-emitted one byte-identical, no listen counted twice."""
    run = chain(tmp_path, new_topic)
    args = recovery_store(tmp_path)
    probe = (8, 30_000, BASE - 2 * WINDOW_MS)  # of the last track written: once it is joined, every track is in state
    fed_later = listens(seed=5, windows=6)
    fed_later.append((1, 30_000, BASE + 7 * WINDOW_MS - 1_200))  # a last window that ends soon after its last listen
    chunks = [fed_later[i:i + 20] for i in range(0, len(fed_later), 20)]
    expected = flink_top_tracks([probe, *fed_later])
    out_topic, plays_topic = run.topic("top-tracks-per-style-stream"), run.topic("track-plays-stream")
    produce_tracks(kafka_bootstrap, run)

    proc = start_dataflow(run.path, kafka_bootstrap, args=args)
    try:
        produce_listens(kafka_bootstrap, run, [probe])
        wait_for(lambda: len(read_all(kafka_bootstrap, plays_topic, timeout_s=1)) == 1, 30, "joined probe")
        half = len(chunks) // 2
        for chunk in chunks[:half]:
            produce_listens(kafka_bootstrap, run, chunk)
            time.sleep(0.3)
        wait_for(lambda: len(read_all(kafka_bootstrap, out_topic, timeout_s=1)) > 0, 30, "first Top-N window")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    before = {v for _, v, _, _, _ in read_all(kafka_bootstrap, out_topic)}
    assert 0 < len(before) < len(expected) and before <= expected

    proc = start_dataflow(run.path, kafka_bootstrap, args=args)
    try:
        for chunk in chunks[half:]:
            produce_listens(kafka_bootstrap, run, chunk)
            time.sleep(0.1)
        wait_for(lambda: len({v for _, v, _, _, _ in read_all(kafka_bootstrap, out_topic, timeout_s=1)}) >= len(expected),
                 60, "complete Top-N")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    seen: dict[bytes, tuple] = {}
    for key, value, headers, _, _ in read_all(kafka_bootstrap, out_topic):
        assert seen.setdefault(key, (value, headers)) == (value, headers), "a re-emitted row differs"
    assert {value for value, _ in seen.values()} == expected
    plays: dict[bytes, bytes] = {}
    for key, value, _, _, _ in read_all(kafka_bootstrap, plays_topic):  # the join's rows: re-emitted ones are repeats
        plays.setdefault(value, key)
    assert len(plays) <= 1 + len([r for r in fed_later if r[1] is not None and r[1] >= MIN_LISTEN_MS and r[0] in TRACKS])


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {timeout_s} s"
        time.sleep(0.3)
