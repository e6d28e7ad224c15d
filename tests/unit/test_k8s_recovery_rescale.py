"""What a rescale does to recovery state with the manifests' per-pod layout.

Real Bytewax processes run locally, as the StatefulSet runs them (pod name,
host file), each with its own recovery directory prepared by the image's
`entrypoint-recovery.sh`, as one volume per pod would be. A small stateful
dataflow counts lines per key from a file, which grows between runs. The
claims checked are those docs/kubernetes.md makes: scaling up past the
partition count keeps every key's state, and scaling down below it refuses
to start instead of losing state. No broker and no cluster are involved.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kustomize_render import K8S

STATEFULSET = "rescale"
PARTS = 2

FLOW = '''
import os
import bytewax.operators as op
from bytewax.connectors.files import FileSource
from bytewax.connectors.stdio import StdOutSink
from bytewax.dataflow import Dataflow

def count(state, _line):
    state = (state or 0) + 1
    return state, state

flow = Dataflow("rescale")
lines = op.input("in", flow, FileSource(os.environ["INPUT"]))
counts = op.stateful_map("count", op.key_on("key", lines, str.strip), count)
op.output("out", counts, StdOutSink())
'''


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _env() -> dict[str, str]:
    return {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def _volume(tmp: Path, ordinal: int) -> Path:
    """Pod `ordinal`'s recovery volume, initialised as the init container does (once)."""
    volume = tmp / f"recovery-{ordinal}"
    volume.mkdir(exist_ok=True)
    env = {**_env(), "BYTEWAX_RECOVERY_DIRECTORY": str(volume), "BYTEWAX_RECOVERY_PARTS": str(PARTS),
           "BYTEWAX_POD_NAME": f"{STATEFULSET}-{ordinal}"}
    subprocess.run(["sh", str(K8S / "image" / "entrypoint-recovery.sh")], env=env, check=True, capture_output=True)
    return volume


def _run_cluster(tmp: Path, processes: int) -> tuple[list[str], list[str]]:
    """Run `processes` pods to the end of the input; (output lines, stderr of each)."""
    hostfile = tmp / f"hostfile-{processes}.txt"
    hostfile.write_text("".join(f"127.0.0.1:{port}\n" for port in _free_ports(processes)))
    running = []
    for ordinal in range(processes):
        env = {
            **_env(),
            "INPUT": str(tmp / "input.txt"),
            "BYTEWAX_POD_NAME": f"{STATEFULSET}-{ordinal}",
            "BYTEWAX_STATEFULSET_NAME": STATEFULSET,
            "BYTEWAX_HOSTFILE_PATH": str(hostfile),
        }
        command = [sys.executable, "-m", "bytewax.run", "flow", "-r", str(_volume(tmp, ordinal)), "-s", "1", "-b", "0"]
        running.append(subprocess.Popen(command, env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs, errors = [], []
    for process in running:
        out, err = process.communicate(timeout=120)
        # Only the sink's lines: Bytewax also prints connection retries to stdout.
        outputs += [line for line in out.splitlines() if line.startswith("(")]
        errors.append(err)
    return outputs, errors


def _append(tmp: Path, lines: str) -> None:
    with open(tmp / "input.txt", "a") as f:
        f.write(lines)


@pytest.fixture
def cluster_dir(tmp_path: Path) -> Path:
    (tmp_path / "flow.py").write_text(FLOW)
    return tmp_path


def test_rescaling_with_one_partition_per_pod_keeps_or_refuses_never_loses(cluster_dir: Path) -> None:
    tmp = cluster_dir
    _append(tmp, "a\nb\na\nc\nc\nc\n")
    out, _ = _run_cluster(tmp, PARTS)
    assert sorted(out) == sorted(["('a', 1)", "('a', 2)", "('b', 1)", "('c', 1)", "('c', 2)", "('c', 3)"])

    # Scale up past the partition count: the new pod holds no partition, state carries on.
    _append(tmp, "a\nb\nc\n")
    out, _ = _run_cluster(tmp, PARTS + 1)
    assert sorted(out) == ["('a', 3)", "('b', 2)", "('c', 4)"]
    assert list((tmp / f"recovery-{PARTS}").iterdir()) == []

    # Back to the partition count: still every key's state.
    _append(tmp, "a\nb\nc\n")
    out, _ = _run_cluster(tmp, PARTS)
    assert sorted(out) == ["('a', 4)", "('b', 3)", "('c', 5)"]

    # Below it: a partition is out of reach, and the dataflow refuses to start.
    _append(tmp, "a\n")
    out, errors = _run_cluster(tmp, PARTS - 1)
    assert out == []
    assert "MissingPartitionsError" in errors[0]
