"""The configuration path on hostile text: the shipped pipelines mutated
(characters, lines, indentation, values, deep nesting, aliases), and
generated documents. Loading, resolving and validating (SQL planning
included) raise nothing but `ConfigError`, and each of its problems names
the file it is about."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.validate import validate_file
from config import ConfigError, load_pipeline
from config.sql import compile_query

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
SHIPPED = [p.read_text(encoding="utf-8") for p in sorted(CONFIG_DIR.glob("*.yaml"))]
SPECIAL = list(":-[]{}&*!|>#%@`'\"\t\n ,?\\") + ["\x00", "\x85", "\ufeff", "\u2028", "é", "\udcff"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=20),
                    st.sampled_from(["[[STREAM:x]]", "INSERT INTO", "`ts` - INTERVAL '3' SECONDS", "off", "-1", "1;2",
                                     "amqp://u:p@h:x/", "long_timestamp-millis", "TUMBLE", "*a", "&a x", "~"]))


def check(text: str, env: dict[str, str] | None = None) -> None:
    """Load, resolve and validate `text` as a file: a ConfigError naming the file, or success."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "pipeline.yaml")
        with open(path, "w", encoding="utf-8", errors="surrogatepass") as out:
            out.write(text)
        for attempt in (lambda: load_pipeline(path, env=env or {}), lambda: validate_file(path, compile_query)):
            try:
                attempt()
            except ConfigError as exc:
                assert exc.problems
                for problem in exc.problems:
                    assert str(problem).startswith(path), str(problem)
                    assert problem.message.strip()


@st.composite
def mutated(draw) -> str:
    text = draw(st.sampled_from(SHIPPED))
    lines = text.split("\n")
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["char", "delete", "duplicate", "swap", "indent", "value", "nest", "alias",
                                     "truncate"]))
        i = draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        if kind == "char":
            at = draw(st.integers(0, len(line)))
            lines[i] = line[:at] + draw(st.sampled_from(SPECIAL)) + line[at + 1:]
        elif kind == "delete":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, line)
        elif kind == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "indent":
            lines[i] = " " * draw(st.integers(0, 12)) + line.lstrip()
        elif kind == "value" and ":" in line:
            key = line.split(":", 1)[0]
            lines[i] = f"{key}: {yaml.safe_dump(draw(SCALARS), default_flow_style=True).strip().removesuffix('...').strip()}"
        elif kind == "nest" and ":" in line:
            depth = draw(st.sampled_from([3, 64, 65, 500, 5_000]))
            lines[i] = line.split(":", 1)[0] + ": " + "[" * depth + "]" * depth
        elif kind == "alias" and ":" in line:
            lines[i] = line.split(":", 1)[0] + ": &a [" + ", ".join(["*a"] * 5) + "]"
        elif kind == "truncate":
            lines = lines[:i]
        if not lines:
            lines = [""]
    return "\n".join(lines)


values = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                      max_leaves=12)
documents = st.fixed_dictionaries(
    {"apiVersion": st.sampled_from(["streaming.tanzu.vmware.com/v1alpha1", "v1"]),
     "kind": st.sampled_from(["Stream", "Processor", "ClusterStream", "Other"]),
     "metadata": st.one_of(st.fixed_dictionaries({"name": SCALARS}), values),
     "spec": values},
)

FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "120")), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(mutated())
def test_mutated_shipped_pipelines_give_only_clear_problems(text: str) -> None:
    check(text)


@FUZZ
@given(st.lists(documents, min_size=1, max_size=4))
def test_generated_documents_give_only_clear_problems(docs: list) -> None:
    check(yaml.safe_dump_all(docs, allow_unicode=True))


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_only_clear_problems(text: str) -> None:
    check(text)


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.text(max_size=60), st.sampled_from(["amqp://u:p@h:x/", "amqp://[::1", "", " ", "amqp://u:p@/"])))
def test_any_rabbitmq_url_gives_only_clear_problems(url: str) -> None:
    check(SHIPPED[0], env={"RABBITMQ_URL": url, "KAFKA_BOOTSTRAP_SERVERS": url})
