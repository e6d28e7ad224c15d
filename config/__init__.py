"""Pipeline configuration: Streaming Runtime resources (YAML) in, a `Pipeline` out.

`load_pipeline(path)` reads the resources, checks them, and resolves them into
the immutable `config.pipeline.Pipeline`; any mistake raises `ConfigError`
carrying every problem found, each naming file, document, line, resource and
field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from config.errors import ConfigError, Problem
from config.pipeline import Pipeline

DEFAULT_PIPELINE = Path(__file__).with_name("iot-monitoring.yaml")


def load_pipeline(path: str | Path = DEFAULT_PIPELINE, env: Mapping[str, str] | None = None) -> Pipeline:
    """Load and resolve one YAML file; `env` defaults to the process environment."""
    from config.loader import load_resources
    from config.resolve import resolve

    return resolve(load_resources(path), str(path), env)


__all__ = ["ConfigError", "DEFAULT_PIPELINE", "Pipeline", "Problem", "load_pipeline"]
