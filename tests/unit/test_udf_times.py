"""Window bounds as count records carry them: epoch millis or Flink's text."""

from __future__ import annotations

import pytest

from udf.headers import flink_time_ms
from udf.times import epoch_ms


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        (1645021080000, 1645021080000),
        (1645021080000.0, 1645021080000),
        ("2022-02-16 14:18:00", 1645021080000),
        ("2022-02-16 14:18:00.5", 1645021080500),
        (" 2022-02-16 14:18:00.123 ", 1645021080123),
    ],
)
def test_times_that_read(value, ms) -> None:
    assert epoch_ms(value) == ms
    assert flink_time_ms(value) == ms


@pytest.mark.parametrize("value", [True, None, "yesterday", [1]])
def test_anything_else_is_refused(value) -> None:
    with pytest.raises(ValueError):
        epoch_ms(value)
    assert flink_time_ms(value) is None
