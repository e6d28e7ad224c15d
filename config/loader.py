"""Multi-document YAML -> resource models, keeping where each value came from.

The YAML node tree is kept next to each model so that every later problem
(here or in `config.resolve`) can name the exact line of the field at fault.
Every document is checked; all problems are raised together as one
`ConfigError`.

A document nested more than `MAX_DEPTH` levels deep, or one whose aliases
make it more than `MAX_NODES` nodes, is a problem of its own (nothing else in
it is checked): no resource comes close, and reading further would exhaust
Python's recursion or take hours. The YAML parsers themselves stop at
their nesting limits, which is reported the same way, never as a traceback.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml
from pydantic import ValidationError

from config.errors import ConfigError, Problem, raise_if_any
from config.resources import INPUT_FORM_TAGS, RESOURCE_KINDS, SECRET_KINDS, Resource, known_field_names

FieldPath = Sequence[str | int]

FAST_LOADER: type[yaml.SafeLoader | yaml.CSafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser when PyYAML is built with it (several times faster), else the pure-Python one."""
MAX_DEPTH = 64  # levels of mappings and lists in one document
MAX_NODES = 100_000  # nodes of one document, counting each use of an alias


@dataclass(frozen=True)
class Origin:
    """Where a resource was read from: file, document, and its YAML nodes."""

    file: str
    document: int  # 1-based
    node: yaml.Node
    resource: str | None = None  # "Kind/name"

    @property
    def line(self) -> int:
        return self.node.start_mark.line + 1

    def line_of(self, path: FieldPath) -> int:
        """Line of the deepest node along `path` that exists (the field, else its parent)."""
        node = self.node
        for part in path:
            child = _child(node, part)
            if child is None:
                break
            node = child
        return node.start_mark.line + 1

    def problem(self, message: str, path: FieldPath = ()) -> Problem:
        return Problem(
            file=self.file,
            message=message,
            document=self.document,
            line=self.line_of(path),
            resource=self.resource,
            field=format_path(path) or None,
        )


@dataclass(frozen=True)
class LoadedResource:
    """A validated resource and its origin."""

    resource: Resource
    origin: Origin

    @property
    def kind(self) -> str:
        return self.resource.kind

    @property
    def name(self) -> str:
        return self.resource.metadata.name


def format_path(path: FieldPath) -> str:
    return ".".join(str(p) for p in path)


def load_resources(path: str | Path) -> list[LoadedResource]:
    """Read and validate every resource in a YAML file; raises `ConfigError`."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(file, f"cannot read the file: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(file, f"the file is not UTF-8 text: {exc.reason} at byte {exc.start}")]) from None
    return parse_resources(text, file)


def parse_resources(text: str, file: str) -> list[LoadedResource]:
    """Validate every resource in YAML text; `file` names it in messages."""
    problems: list[Problem] = []
    loaded: list[LoadedResource] = []
    for index, node, data in _documents(text, file):
        origin = Origin(file=file, document=index, node=node, resource=_label(data))
        oversized = _oversized(origin, node)
        if oversized is not None:
            problems.append(oversized)
            continue
        problems.extend(_duplicate_keys(origin, node))
        resource = _validate(origin, data, problems)
        if resource is not None:
            loaded.append(LoadedResource(resource, origin))
    problems.extend(_duplicate_names(loaded))
    if not loaded and not problems:
        problems.append(Problem(file, "no resources found (expected Stream, ClusterStream and Processor documents)"))
    raise_if_any(problems)
    return loaded


def _documents(text: str, file: str) -> list[tuple[int, yaml.Node, Any]]:
    """(1-based index, node, value) of each non-empty document; a syntax error stops the file."""
    if FAST_LOADER is yaml.SafeLoader:
        return _parse(text, file, yaml.SafeLoader)
    try:
        return _parse(text, file, FAST_LOADER)
    except ConfigError as fast_error:
        # libyaml's messages leave out what is wrong (the character, alias or
        # escape): the pure-Python parser reads the file again to say it,
        # unless it is the nesting libyaml refused, which it cannot read either.
        if "nesting depth" in str(fast_error):
            raise
        return _parse(text, file, yaml.SafeLoader)


def _parse(
    text: str, file: str, loader_class: type[yaml.SafeLoader | yaml.CSafeLoader]
) -> list[tuple[int, yaml.Node, Any]]:
    documents: list[tuple[int, yaml.Node, Any]] = []
    index = 0
    loader = None
    try:
        loader = loader_class(text)  # the pure-Python reader refuses control characters here
        while loader.check_node():
            index += 1
            node = loader.get_node()
            data = loader.construct_document(node)
            if data is not None:
                documents.append((index, node, data))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        detail = ", ".join(str(p) for p in (exc.context, exc.problem) if p)
        column = f" (column {mark.column + 1})" if mark else ""
        raise ConfigError(
            [Problem(file, f"YAML syntax error: {detail}{column}", document=index or 1, line=mark.line + 1 if mark else None)]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(file, f"YAML error: {exc}", document=index or 1)]) from None
    except RecursionError:  # the pure-Python composer recurses once per level
        raise ConfigError([Problem(file, f"the document nests too deeply to be read (a resource has at most {MAX_DEPTH}"
                                         " levels of mappings and lists)", document=index or 1)]) from None
    finally:
        if loader is not None:
            loader.dispose()
    return documents


def _oversized(origin: Origin, root: yaml.Node) -> Problem | None:
    """A problem when the document nests deeper than MAX_DEPTH or has more than
    MAX_NODES nodes (aliases counted at each use); walked without recursion."""
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    visited = 0
    while stack:
        node, depth = stack.pop()
        visited += 1
        if visited > MAX_NODES:
            return origin.problem(f"the document has more than {MAX_NODES} values (aliases counted each time they are"
                                  " used): not a resource")
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            continue
        if depth > MAX_DEPTH:
            return Problem(origin.file, f"the document nests more than {MAX_DEPTH} levels of mappings and lists:"
                           " not a resource", document=origin.document, line=node.start_mark.line + 1,
                           resource=origin.resource)
        stack.extend((child, depth + 1) for child in children)
    return None


def _label(data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    kind = data.get("kind")
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if isinstance(kind, str) and isinstance(name, str):
        return f"{kind}/{name}"
    return kind if isinstance(kind, str) else None


def _validate(origin: Origin, data: Any, problems: list[Problem]) -> Resource | None:
    if not isinstance(data, dict):
        problems.append(
            origin.problem(f"a document must be a mapping with apiVersion, kind, metadata and spec, not {_type_name(data)}")
        )
        return None
    kind = data.get("kind")
    kinds = ", ".join(sorted(RESOURCE_KINDS))
    if kind is None:
        problems.append(origin.problem(f"required field is missing (one of {kinds})", ["kind"]))
        return None
    model = RESOURCE_KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        hint = _did_you_mean(str(kind), RESOURCE_KINDS)
        problems.append(origin.problem(f"unknown kind {kind!r} (expected one of {kinds}){hint}", ["kind"]))
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            path = _clean_loc(error["loc"])
            problems.append(origin.problem(_describe(error, path, secret=kind in SECRET_KINDS), path))
        return None


def _clean_loc(loc: tuple[str | int, ...]) -> list[str | int]:
    """Drop the union tags pydantic inserts for `spec.inputs`, which are not YAML keys."""
    path: list[str | int] = []
    for part in loc:
        if part in INPUT_FORM_TAGS and path and path[-1] == "inputs":
            continue
        path.append(part)
    return path


def _describe(error: Any, path: list[str | int], secret: bool = False) -> str:
    """The problem in words; the offending value is quoted unless the document holds secrets."""
    kind = error["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        key = str(path[-1]) if path else "?"
        return f"unknown field {key!r}{_did_you_mean(key, known_field_names())}"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    message = error["msg"]
    message = message[0].lower() + message[1:]
    return message if secret else f"{message} (got {_show(error['input'])})"


def _show(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return _type_name(value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", type(None): "nothing"}.get(type(value), type(value).__name__)


def _did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _child(node: yaml.Node, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return value
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return node.value[part]
    return None


def _duplicate_keys(origin: Origin, node: yaml.Node, path: tuple[str | int, ...] = ()) -> list[Problem]:
    """YAML keeps the last of two equal keys silently; a user almost never means that."""
    problems: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                continue
            if key.value in seen:
                problems.append(
                    Problem(
                        origin.file,
                        f"duplicate key {key.value!r} (YAML would keep only the last one)",
                        document=origin.document,
                        line=key.start_mark.line + 1,
                        resource=origin.resource,
                        field=format_path((*path, key.value)),
                    )
                )
            seen.add(key.value)
            problems.extend(_duplicate_keys(origin, value, (*path, key.value)))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            problems.extend(_duplicate_keys(origin, item, (*path, i)))
    return problems


def _duplicate_names(loaded: list[LoadedResource]) -> list[Problem]:
    first: dict[tuple[str, str], LoadedResource] = {}
    problems: list[Problem] = []
    for item in loaded:
        key = (item.kind, item.name)
        if key in first:
            earlier = first[key].origin
            problems.append(
                item.origin.problem(
                    f"duplicate {item.kind} name {item.name!r}: already defined in document {earlier.document}"
                    f" (line {earlier.line})",
                    ["metadata", "name"],
                )
            )
        else:
            first[key] = item
    return problems


def of_kind(loaded: list[LoadedResource], kind: type[Resource]) -> list[LoadedResource]:  # type: ignore[valid-type]
    """The loaded resources of one kind, in file order."""
    return [item for item in loaded if isinstance(item.resource, kind)]
