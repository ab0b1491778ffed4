"""YAML → validated pydantic models, with errors that name the key path and the line.

Kept apart from the schema (config.py) so plugins can validate their own sections the same way.
"""

from __future__ import annotations

import json
import string
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from .errors import ConfigInvalid

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

# A real config has a few hundred values and a handful of levels. YAML aliases can multiply a
# small file into billions of values ("billion laughs"), and deep nesting exhausts the stack:
# both are refused before anything is built from the document.
MAX_VALUES = 100_000
MAX_DEPTH = 32
MAX_FILE_BYTES = 1 << 20


class Section(BaseModel):
    """Base of every config section: unknown keys are errors (typos must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def checked_template(template: str, known: frozenset[str]) -> str:
    """``template`` if it parses as a format string naming only ``known`` fields, else a
    ValueError saying what is wrong (validators use it: the error gets its key and line)."""
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f}
    except ValueError as exc:
        raise ValueError(f"bad template: {exc}") from None
    unknown = names - known
    if unknown:
        raise ValueError(f"unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
    return template


class ConfigError(ConfigInvalid):
    """A config problem, already phrased for the operator: one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))

    def lines(self) -> list[str]:
        return self.problems


class SourceMap:
    """Where each key path of a YAML document starts, for error messages."""

    def __init__(self, filename: str, root: yaml.Node | None) -> None:
        self.filename = filename
        self.lines: dict[Loc, int] = {}
        # What YAML accepts but a config must not: repeated keys (YAML keeps the last one,
        # silently) and NUL characters (no setting takes one; a path holding one raised
        # ValueError at the start, far from the file).
        self.problems: list[str] = []
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
                        self.problems.append(
                            f"{format_loc((*loc, key.value))}: repeated key (first at line "
                            f"{seen[key.value]}; only one counts) ({self.filename}:{line})"
                        )
                    seen.setdefault(key.value, line)
                    self._walk(value, (*loc, key.value))
                    key_loc = (*loc, key.value)  # a name: mypy misreads a starred subscript
                    self.lines[key_loc] = line  # the key's line, not its value's
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, (*loc, i))
        elif isinstance(node.value, str) and "\x00" in node.value:
            self.problems.append(
                f"{format_loc(loc)}: holds a NUL character (\\0), which no setting takes "
                f"({self.filename}:{node.start_mark.line + 1})"
            )

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
    exc: ValidationError, source: SourceMap, prefix: Loc = (), model: type[BaseModel] | None = None
) -> list[str]:
    out = []
    for err in exc.errors():
        own = tuple(p for p in err["loc"] if not _is_union_tag(p))
        loc = (*prefix, *own)
        if model is not None and is_secret(model, own):
            # Never echo a secret, even a malformed one: logs and terminals are not private.
            what = describe_error({**err, "input": None}).removesuffix(", got nothing")
            problem = f"{what} (the value is a secret and not shown; quote it)"
        else:
            problem = describe_error(err)
        out.append(f"{format_loc(loc)}: {problem} ({source.where(loc)})")
    return out


def is_secret(model: type[BaseModel], loc: Loc) -> bool:
    """Whether the field at ``loc`` inside ``model`` holds a SecretStr."""
    for i, part in enumerate(loc):
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return False
        if _mentions(field.annotation, SecretStr):
            return True
        nested = [a for a in _flatten(field.annotation) if _is_model(a)]
        if not nested or i == len(loc) - 1:
            return False
        model = nested[0]
    return False


def _flatten(annotation: Any) -> list[Any]:
    args = typing.get_args(annotation)
    return [x for a in args for x in _flatten(a)] if args else [annotation]


def _mentions(annotation: Any, cls: type) -> bool:
    return any(a is cls for a in _flatten(annotation))


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_union_tag(part: str | int) -> bool:
    # pydantic puts the tried union member into loc: 'int', 'str', 'function-after[...]'
    return isinstance(part, str) and (
        part in ("int", "str", "float", "bool", "list", "dict", "none") or "[" in part
    )


def validate(
    model: type[M],
    data: Any,
    source: SourceMap,
    prefix: Loc = (),
    context: Mapping[str, Any] | None = None,
) -> M:
    """``context`` reaches the model's validators (``base_dir``: the config file's folder)."""
    try:
        return model.model_validate(data if data is not None else {}, context=context)
    except ValidationError as exc:
        raise ConfigError(problems_from(exc, source, prefix, model)) from None


def read_yaml(path: Path) -> tuple[Any, SourceMap]:
    """The document and its source map. Anything wrong with the file (unreadable, not UTF-8,
    bad syntax, empty, too large, too deep, alias bombs) is a ConfigError naming the line."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError([f"{path}: larger than {MAX_FILE_BYTES} bytes; not a config file?"])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            [f"not UTF-8 text: byte 0x{raw[exc.start]:02x} ({path.name}:{line}); save the file "
             f"as UTF-8"]
        ) from None  # fmt: skip
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_shape(node, path.name)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path.name}:{mark.line + 1}" if mark else path.name
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"YAML syntax error: {problem} ({where})"]) from None
    except RecursionError:
        raise ConfigError([f"(top level): nested too deeply ({path.name})"]) from None
    except (ValueError, OverflowError) as exc:  # a scalar YAML types but cannot build: 2026-02-30
        raise ConfigError([f"YAML value error: {exc} ({path.name})"]) from None
    finally:
        loader.dispose()
    if data is None:
        # An empty file (or one cut short to nothing) would silently mean "all defaults".
        raise ConfigError([f"(top level): the file is empty ({path.name}); nothing is configured"])
    if not isinstance(data, dict):
        raise ConfigError([f"(top level): expected a mapping, got {_got(data)} ({path.name}:1)"])
    source = SourceMap(path.name, node)
    if source.problems:
        raise ConfigError(source.problems)
    return data, source


def _check_shape(root: yaml.Node, filename: str) -> None:
    """Refuse documents whose aliases expand past MAX_VALUES, that nest deeper than MAX_DEPTH,
    or refer to themselves. Linear in the document: a node reached again through an alias is
    counted from the memo, not walked again."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def fail(node: yaml.Node, why: str) -> ConfigError:
        return ConfigError([f"{why} ({filename}:{node.start_mark.line + 1})"])

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise fail(node, "an alias refers to the value that contains it")
        if depth > MAX_DEPTH:
            raise fail(node, f"nested more than {MAX_DEPTH} levels deep")
        open_.add(key)
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        total = 1 + sum(size(child, depth + 1) for child in children)
        open_.discard(key)
        if total > MAX_VALUES:
            raise fail(node, f"expands to more than {MAX_VALUES} values (YAML aliases?)")
        sizes[key] = total
        return total

    size(root, 0)
