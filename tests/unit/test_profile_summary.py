"""The sampled profile's summary: shares per function from collapsed stacks."""

from __future__ import annotations

from pathlib import Path

from benchmarks.profile_sampled import summarize


def test_self_and_inclusive_shares(tmp_path: Path) -> None:
    stacks = tmp_path / "stacks.txt"
    stacks.write_text(
        "_run_module_as_main (runpy:1);main (a.py:1);consume (b.py:2) 6\n"
        "_run_module_as_main (runpy:1);main (a.py:1);decode (c.py:3) 3\n"
        "_run_module_as_main (runpy:1);main (a.py:1) 1\n"
    )
    lines = summarize(stacks, top=5)
    assert lines[0] == "10 samples"
    start = lines.index("self (the function itself was running):") + 1
    self_part = lines[start:lines.index("", start)]
    assert self_part[0].split() == ["60.0", "%", "consume", "(b.py:2)"]
    inclusive = lines[lines.index("inclusive (the function or what it called):") + 1:]
    assert inclusive[0].split()[:3] == ["100.0", "%", "main"]
    assert not any("_run_module_as_main" in line for line in inclusive)
