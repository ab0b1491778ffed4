"""YAML → validated pydantic models, with errors that name the key path and the line.

Kept apart from the schema (config.py) so plugins can validate their own sections the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


class Section(BaseModel):
    """Base of every config section: unknown keys are errors (typos must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfigError(Exception):
    """A config problem, already phrased for the operator: one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class SourceMap:
    """Where each key path of a YAML document starts, for error messages."""

    def __init__(self, filename: str, root: yaml.Node | None) -> None:
        self.filename = filename
        self.lines: dict[Loc, int] = {}
        self.duplicates: list[str] = []  # YAML keeps the last of repeated keys, silently
        if root is not None:
            self._walk(root, ())

    def _walk(self, node: yaml.Node, loc: Loc) -> None:
        self.lines[loc] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    line = key.start_mark.line + 1
                    if key.value in seen:
                        self.duplicates.append(
                            f"{format_loc((*loc, key.value))}: repeated key (first at line "
                            f"{seen[key.value]}; only one counts) ({self.filename}:{line})"
                        )
                    seen.setdefault(key.value, line)
                    self._walk(value, (*loc, key.value))
                    self.lines[(*loc, key.value)] = line  # the key's line, not its value's
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, (*loc, i))

    def line(self, loc: Loc) -> int | None:
        while True:
            if loc in self.lines:
                return self.lines[loc]
            if not loc:
                return None
            loc = loc[:-1]

    def where(self, loc: Loc) -> str:
        line = self.line(loc)
        return f"{self.filename}:{line}" if line else self.filename


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _got(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return "nothing"
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


_EXPECTED = {
    "int_parsing": "expected an integer",
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
}


def describe_error(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind in _EXPECTED:
        return f"{_EXPECTED[kind]}, got {_got(err.get('input'))}"
    if kind in ("enum", "literal_error"):
        expected = err.get("ctx", {}).get("expected", "")
        return f"expected one of {expected}, got {_got(err.get('input'))}"
    if kind == "value_error":
        return str(err.get("ctx", {}).get("error", err["msg"]))
    msg = err["msg"][0].lower() + err["msg"][1:]
    return f"{msg}, got {_got(err.get('input'))}"


def problems_from(
    exc: ValidationError, source: SourceMap, prefix: Loc = (), data: Any = None
) -> list[str]:
    out = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not _is_union_tag(p))
        loc = (*prefix, *loc)
        out.append(f"{format_loc(loc)}: {describe_error(err)} ({source.where(loc)})")
    return out


def _is_union_tag(part: str | int) -> bool:
    # pydantic puts the tried union member into loc: 'int', 'str', 'function-after[...]'
    return isinstance(part, str) and (
        part in ("int", "str", "float", "bool", "list", "dict", "none") or "[" in part
    )


def validate(model: type[M], data: Any, source: SourceMap, prefix: Loc = ()) -> M:
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise ConfigError(problems_from(exc, source, prefix)) from None


def read_yaml(path: Path) -> tuple[Any, SourceMap]:
    """The document and its source map; syntax errors become a ConfigError with the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path.name}:{mark.line + 1}" if mark else path.name
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"YAML syntax error: {problem} ({where})"]) from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError([f"(top level): expected a mapping, got {_got(data)} ({path.name}:1)"])
    source = SourceMap(path.name, node)
    if source.duplicates:
        raise ConfigError(source.duplicates)
    return data or {}, source
