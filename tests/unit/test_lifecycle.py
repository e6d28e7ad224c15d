"""What a run opens is closed at shutdown: the UDF client's channels, the late
output's reader and producer."""

from __future__ import annotations

from runtime import lifecycle


class Resource:
    def __init__(self, log: list[str], name: str, fail: bool = False) -> None:
        self.log, self.name, self.fail = log, name, fail

    def close(self) -> None:
        self.log.append(self.name)
        if self.fail:
            raise RuntimeError("already broken")


def test_registered_resources_close_newest_first_and_a_failure_does_not_stop_the_rest(caplog) -> None:
    closed: list[str] = []
    lifecycle.close_at_shutdown(Resource(closed, "a"))
    lifecycle.close_at_shutdown(Resource(closed, "b", fail=True))
    lifecycle.close_at_shutdown(Resource(closed, "c"))
    lifecycle.close_all()
    assert closed == ["c", "b", "a"]
    assert "closing Resource at shutdown failed: already broken" in caplog.text
    lifecycle.close_all()
    assert closed == ["c", "b", "a"]  # each once


def test_the_wiring_registers_every_udf_client(monkeypatch) -> None:
    from config import load_pipeline
    from dataflows.iot import compile_plans
    from dataflows.wiring import build_flow
    from runtime.settings import RunOptions

    registered: list[object] = []
    monkeypatch.setattr("dataflows.wiring.close_at_shutdown", lambda r: registered.append(r) or r)
    pipeline = load_pipeline(env={})
    options = RunOptions()
    build_flow(pipeline, compile_plans(pipeline, options), options)
    from connectors.udf_client import UdfClient

    assert len(registered) == 1 and isinstance(registered[0], UdfClient)


def test_the_late_output_closes_its_reader_and_producer() -> None:
    from connectors.late_sink import LateRecordPartition

    closed: list[str] = []
    LateRecordPartition(Resource(closed, "fetcher"), Resource(closed, "producer")).close()  # type: ignore[arg-type]
    assert closed == ["fetcher", "producer"]
