"""Importing the dataflow module does nothing; asking it for `flow` builds the
flow with the cyclic collector off, and leaves the collector on afterwards,
whether the build succeeds or fails."""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

MODULE = "dataflows.iot"


@pytest.fixture
def collector_seen(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """Whether the collector was on when the build began (the module calls
    configure_logging first; the stand-in also keeps the test's logging as is)."""
    seen: list[bool] = []
    monkeypatch.setattr("runtime.logs.configure_logging", lambda *args: seen.append(gc.isenabled()))
    threshold = gc.get_threshold()
    sys.modules.pop(MODULE, None)
    yield seen
    sys.modules.pop(MODULE, None)
    gc.unfreeze()
    gc.set_threshold(*threshold)
    gc.enable()


def test_a_failed_build_leaves_the_collector_on(
    collector_seen: list[bool], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("IOT_PIPELINE", str(tmp_path / "missing.yaml"))
    module = importlib.import_module(MODULE)
    assert collector_seen == [] and gc.isenabled()  # importing alone built nothing
    with pytest.raises(SystemExit):
        module.flow
    assert collector_seen == [False]
    assert gc.isenabled()


def test_a_built_flow_leaves_the_collector_on_and_the_heap_frozen(
    collector_seen: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IOT_PIPELINE", raising=False)
    monkeypatch.setenv("IOT_PROCESSORS", "no-such-processor")  # an empty flow: no broker asked
    module = importlib.import_module(MODULE)
    assert module.flow.flow_id == "iot-monitoring"
    assert collector_seen == [False]
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0
