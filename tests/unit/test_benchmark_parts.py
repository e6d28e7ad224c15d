"""The benchmark's own parts that need no broker: its data, its pipeline
rewrite, how it judges counts and how it prints ratios."""

from __future__ import annotations

import calendar
from collections import Counter, defaultdict

import pytest

from benchmarks.dataset import ERROR_CODES, JITTER_MS, EventMaker, LoadedData, expected_counts, partition_of
from benchmarks.pipeline_yaml import INPUT_STREAM, write_pipeline
from benchmarks.results import Output, agree, parse_timestamp
from benchmarks.throughput import FormatReport, Measured
from config import load_pipeline

WATERMARK_DELAY_MS = 3000


def test_same_seed_same_events_other_seed_other_events():
    assert EventMaker(seed=5).chunk(500) == EventMaker(seed=5).chunk(500)
    assert EventMaker(seed=5).chunk(500) != EventMaker(seed=6).chunk(500)


def test_chunks_continue_the_event_time():
    maker = EventMaker(events_per_s=1000.0)
    first, second = maker.chunk(1000), maker.chunk(1000)
    gaps = [b["ts"] - a["ts"] for a, b in zip(first, second)]  # 1,000 events later at 1,000/s: one second on
    assert all(1000 - JITTER_MS < g < 1000 + JITTER_MS for g in gaps)
    assert abs(sum(gaps) / len(gaps) - 1000) < 60


@pytest.mark.parametrize("partitions", [1, 3, 4])
def test_no_event_is_late_in_any_partition(partitions):
    records = EventMaker(events_per_s=2000.0, seed=11).chunk(20_000)
    highest: dict[int, int] = {}
    for r in records:
        p = partition_of(r["error_code"], partitions)
        top = highest.get(p)
        if top is not None:
            watermark = top - WATERMARK_DELAY_MS
            window_end = r["ts"] - r["ts"] % 60_000 + 60_000
            assert window_end - 1 > watermark, r
        highest[p] = max(r["ts"], top if top is not None else r["ts"])


def test_the_data_has_the_seeds_shape():
    records = EventMaker(seed=3).chunk(40_000)
    assert set(records[0]) == {"error_code", "type", "application", "version", "description", "ts"}
    assert {r["error_code"] for r in records} == set(ERROR_CODES) and len(ERROR_CODES) == 14
    types = Counter(r["type"] for r in records)
    assert set(types) == {"ERROR", "WARN", "INFO", "DEBUG"}
    assert all(abs(n - 10_000) < 600 for n in types.values()), types


def test_expected_counts_are_the_error_records_per_minute_and_code():
    records = EventMaker(seed=9).chunk(30_000)
    counts: Counter = Counter()
    expected_counts(records, counts)
    by_minute: dict[tuple[int, str], int] = defaultdict(int)
    for r in records:
        if r["type"] == "ERROR":
            minute = r["ts"] // 60_000 * 60_000
            by_minute[(minute, r["error_code"])] += 1
    assert dict(counts) == dict(by_minute)
    assert sum(counts.values()) == sum(1 for r in records if r["type"] == "ERROR")


def test_each_code_lives_in_one_partition_and_all_partitions_are_used():
    assert sorted({partition_of(c, 4) for c in ERROR_CODES}) == [0, 1, 2, 3]
    assert Counter(partition_of(c, 4) for c in ERROR_CODES) == Counter({0: 4, 1: 4, 2: 3, 3: 3})


def test_closed_before_is_the_partitions_latest_event_minus_the_grace():
    data = LoadedData(10, 2, {}, {0: 100_000, 1: 50_000}, 0.0)
    closed = data.closed_before_ms(3000)
    assert closed[ERROR_CODES[0]] == 97_000  # code index 0 -> partition 0
    assert closed[ERROR_CODES[1]] == 47_000


def test_parse_timestamp_reads_the_results_utc_format():
    assert parse_timestamp("2022-02-16 14:18:00") == calendar.timegm((2022, 2, 16, 14, 18, 0)) * 1000
    assert parse_timestamp("2022-02-16 14:18:00.250") == calendar.timegm((2022, 2, 16, 14, 18, 0)) * 1000 + 250


def test_agree_tells_apart_open_windows_missing_windows_and_wrong_counts():
    code_a, code_b = ERROR_CODES[0], ERROR_CODES[1]
    expected = {(0, code_a): 5, (60_000, code_a): 7, (0, code_b): 3, (60_000, code_b): 2, (120_000, code_b): 1}
    got = Output({(0, code_a): 5, (0, code_b): 4, (60_000, code_b): 2, (180_000, code_b): 9})
    closed_before = {code: 130_000 for code in ERROR_CODES}  # windows ending after 130 s were still open
    result = agree(got, expected, closed_before)
    assert result.matching == 2
    assert result.open_at_end == [(120_000, code_b)]
    assert result.missing == [(60_000, code_a)]
    assert result.wrong == [((0, code_b), 4, 3)]
    assert result.extra == [(180_000, code_b)]
    assert not result.exact
    assert "1 windows never emitted" in result.describe() and "1 closed windows missing" in result.describe()


def test_agree_without_engine_knowledge_calls_every_absent_window_missing():
    expected = {(0, "C001_ABORTED"): 1, (60_000, "C001_ABORTED"): 1}
    result = agree(Output({(0, "C001_ABORTED"): 1}), expected)
    assert result.missing == [(60_000, "C001_ABORTED")] and result.open_at_end == []


def test_exact_agreement():
    expected = {(0, "C001_ABORTED"): 4}
    result = agree(Output(dict(expected)), expected)
    assert result.exact and result.describe() == "all 1 counts agree"
    assert not agree(Output(dict(expected), duplicates=1), expected).exact


@pytest.mark.parametrize("value_format", ["avro-confluent", "json"])
def test_rewritten_pipeline_reads_the_benchmark_topic_in_the_chosen_format(tmp_path, value_format):
    path = write_pipeline(tmp_path, "bench-in", "bench-out", value_format, {"fetch.queue.backoff.ms": "10"})
    pipeline = load_pipeline(str(path), env={})
    stream = pipeline.streams[INPUT_STREAM]
    assert stream.topic == "bench-in" and stream.value_format == value_format
    assert dict(stream.kafka_properties) == {"fetch.queue.backoff.ms": "10"}
    assert "bench-out" in {s.topic for s in pipeline.streams.values()}


def test_ratios_line_divides_event_rates_and_marks_missing_contenders():
    report = FormatReport("avro-confluent")
    for letter, seconds in (("a", 1.0), ("b", 4.0), ("c", 2.0), ("e", 20.0)):
        report.results[letter] = Measured(letter, seconds, 100.0, 1000, seconds)
    assert report.ratios_line() == "ratios c/a=0.50 c/b=2.00 c/e=10.00 c/f=n/a d/c=n/a"
