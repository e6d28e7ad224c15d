"""The pipelines of `tests/support/sr_shapes/` made ready for one test: every
Stream's topic (or exchange) renamed uniquely, and a Processor's query or
attributes changed where the test says."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from config import load_pipeline
from config.pipeline import Pipeline

SHAPES = Path(__file__).resolve().parent / "sr_shapes"


@dataclass(frozen=True)
class Shape:
    path: Path
    topics: Mapping[str, str]  # Stream metadata.name -> its topic or exchange for this test

    def pipeline(self) -> Pipeline:
        return load_pipeline(self.path, env={})

    def topic(self, stream: str) -> str:
        return self.topics[stream]


def shape(tmp_path: Path, name: str, *, queries: Mapping[str, str] | None = None,
          attributes: Mapping[str, Mapping[str, str]] | None = None, extra: Iterable[dict[str, Any]] = ()) -> Shape:
    """`name` from sr_shapes (or `tmp_path/name`), with unique topics; `queries` and
    `attributes` (by Processor name) replace the query and add attributes."""
    source = SHAPES / name if (SHAPES / name).exists() else tmp_path / name
    docs = [d for d in yaml.safe_load_all(source.read_text()) if d] + list(extra)
    run = uuid.uuid4().hex[:8]
    topics: dict[str, str] = {}
    for doc in docs:
        spec = doc.setdefault("spec", {})
        if doc["kind"] == "Stream":
            topic = f"{spec.get('name') or doc['metadata']['name']}-{run}"
            spec["name"] = topic
            topics[doc["metadata"]["name"]] = topic
        elif doc["kind"] == "Processor":
            processor = doc["metadata"]["name"]
            if queries and processor in queries:
                key = "inlineQuery" if "inlineQuery" in spec else "query"
                spec[key] = [queries[processor]]
            if attributes and processor in attributes:
                spec.setdefault("attributes", {}).update(attributes[processor])
    path = tmp_path / f"{run}-{Path(name).name}"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return Shape(path, topics)
