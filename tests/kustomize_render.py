"""Render the k8s/ kustomizations, for the tests that check the manifests.

kustomize is built at a pinned version into a cache outside the repository by
`k8s/tools/install-kustomize.sh` (Go module proxy), so every machine renders
with the same kustomize. Nothing here talks to a cluster.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "k8s"
INSTALL_SCRIPT = K8S / "tools" / "install-kustomize.sh"
GO_MISSING = 3  # the install script's exit code when `go` is not on PATH

# Every kustomization a user can apply: the base and each overlay.
TARGETS = ("base", "overlays/udf-service", "overlays/strimzi-rabbitmq", "overlays/external-brokers")

STATEFULSET = "iot-monitoring"

Manifest = dict[str, Any]


@functools.cache
def kustomize() -> Path:
    """The pinned kustomize binary; skips the caller's test if Go is missing."""
    done = subprocess.run(["sh", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=1800)
    if done.returncode == GO_MISSING:
        pytest.skip("go is not installed: kustomize cannot be built (k8s/tools/install-kustomize.sh)")
    if done.returncode != 0:
        raise RuntimeError(f"installing kustomize failed:\n{done.stderr}")
    return Path(done.stdout.strip().splitlines()[-1])


@functools.cache
def _render_text(target: str) -> str:
    done = subprocess.run(
        [str(kustomize()), "build", str(K8S / target)], capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        raise AssertionError(f"kustomize build k8s/{target} failed:\n{done.stderr}")
    return done.stdout


def render(target: str) -> list[Manifest]:
    """The objects `kustomize build k8s/<target>` produces (fresh copies)."""
    return [doc for doc in yaml.safe_load_all(_render_text(target)) if doc]


def find(objects: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    """The one object of `kind` (and `name`, if given); generated names match by prefix."""
    matches = [
        obj
        for obj in objects
        if obj["kind"] == kind and (name is None or _same_name(obj["metadata"]["name"], name, kind))
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def all_of(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [obj for obj in objects if obj["kind"] == kind]


def _same_name(actual: str, wanted: str, kind: str) -> bool:
    if kind in ("ConfigMap", "Secret") and actual.startswith(wanted + "-"):
        return True  # configMapGenerator appends a content hash
    return actual == wanted


def container(pod_spec: dict[str, Any], name: str, init: bool = False) -> dict[str, Any]:
    group = pod_spec.get("initContainers" if init else "containers", [])
    matches = [c for c in group if c["name"] == name]
    assert len(matches) == 1, f"no single {'init ' if init else ''}container {name!r}"
    return matches[0]


def env_entries(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A container's env entries by name; a duplicated name is an error."""
    names = [e["name"] for e in c.get("env", [])]
    assert len(names) == len(set(names)), f"duplicate env names in {c['name']}: {names}"
    return {e["name"]: e for e in c.get("env", [])}


def literal_env(c: dict[str, Any]) -> dict[str, str]:
    """The env entries that have a literal value."""
    return {name: e["value"] for name, e in env_entries(c).items() if "value" in e}


def config_map_data(objects: list[Manifest], name: str) -> dict[str, str]:
    return find(objects, "ConfigMap", name).get("data", {})
