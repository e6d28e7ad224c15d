"""`WindowSpec.windows_of` against windows enumerated by brute force.

The reference below knows only the definitions: TUMBLE windows are
[k*size, (k+1)*size); HOP windows [k*slide, k*slide + size); CUMULATE windows
[k*size, k*size + j*step) for j = 1..size/step. It scans every candidate start
near the timestamp and keeps the windows that contain it.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from config.sql.plan import WindowSpec

timestamps = st.integers(min_value=-(10**13), max_value=10**13)
units = st.integers(min_value=1, max_value=5_000)
multiples = st.integers(min_value=1, max_value=8)


def contains(window: tuple[int, int], ts: int) -> bool:
    return window[0] <= ts < window[1]


def brute_force(
    kind: str, ts: int, size: int, slide: int | None = None, step: int | None = None
) -> list[tuple[int, int]]:
    period = {"TUMBLE": size, "HOP": slide, "CUMULATE": size}[kind]
    assert period is not None
    # Every start that is a multiple of the period, from far enough before ts to after it.
    first = (ts - size) // period * period - period
    candidates: list[tuple[int, int]] = []
    start = first
    while start <= ts:
        if kind == "CUMULATE":
            assert step is not None
            candidates.extend((start, start + j * step) for j in range(1, size // step + 1))
        else:
            candidates.append((start, start + size))
        start += period
    return sorted(w for w in candidates if contains(w, ts))


@given(ts=timestamps, size=units)
def test_tumble_matches_the_definition(ts: int, size: int) -> None:
    spec = WindowSpec("TUMBLE", "ts", size_ms=size)
    assert sorted(spec.windows_of(ts)) == brute_force("TUMBLE", ts, size)


@given(ts=timestamps, slide=units, n=multiples)
def test_hop_matches_the_definition(ts: int, slide: int, n: int) -> None:
    size = slide * n
    spec = WindowSpec("HOP", "ts", size_ms=size, slide_ms=slide)
    windows = spec.windows_of(ts)
    assert sorted(windows) == brute_force("HOP", ts, size, slide=slide)
    assert len(windows) == n


@given(ts=timestamps, step=units, n=multiples)
def test_cumulate_matches_the_definition(ts: int, step: int, n: int) -> None:
    size = step * n
    spec = WindowSpec("CUMULATE", "ts", size_ms=size, step_ms=step)
    assert sorted(spec.windows_of(ts)) == brute_force("CUMULATE", ts, size, step=step)


def test_examples_by_hand() -> None:
    minute = 60_000
    ts = 1_645_020_042_399  # 2022-02-16 14:00:42.399 UTC
    minute_start = 1_645_020_000_000
    assert WindowSpec("TUMBLE", "ts", minute).windows_of(ts) == [(minute_start, minute_start + minute)]
    # HOP slide 30 s, size 1 min: 42.399 s into the minute lies in the windows
    # starting at :00 and at :30.
    hop = WindowSpec("HOP", "ts", size_ms=minute, slide_ms=30_000)
    assert sorted(hop.windows_of(ts)) == [
        (minute_start, minute_start + minute),
        (minute_start + 30_000, minute_start + 90_000),
    ]
    # CUMULATE step 20 s, size 1 min: 42.399 s into the minute lies in [0, 60) only.
    cumulate = WindowSpec("CUMULATE", "ts", size_ms=minute, step_ms=20_000)
    assert cumulate.windows_of(ts) == [(minute_start, minute_start + minute)]
    assert sorted(cumulate.windows_of(minute_start + 5)) == [
        (minute_start, minute_start + 20_000),
        (minute_start, minute_start + 40_000),
        (minute_start, minute_start + 60_000),
    ]


def test_window_boundaries_are_half_open() -> None:
    spec = WindowSpec("TUMBLE", "ts", 1_000)
    assert spec.windows_of(999) == [(0, 1_000)]
    assert spec.windows_of(1_000) == [(1_000, 2_000)]
    assert spec.windows_of(-1) == [(-1_000, 0)]
