"""The pronunciation dictionary: term → spoken form, applied to a line after it is rendered
(text and names) and before the engine.

An entry is plain (a literal term; ASCII letters match whatever their case; a term that starts
or ends with an ASCII letter or digit matches only where no such character touches it, so
``nb`` is not found inside ``nba``) or a regular expression run by RE2, whose time is linear in
the text whatever the pattern (no catastrophic backtracking; RE2 refuses backreferences and
lookaround, named at load). An entry may be limited to some voices or languages.

Order: the regular expressions, in the file's order, then one pass of every plain term (the
longest term that matches at a position wins; what a term produced is not looked at again).
Cost is bounded: a plain pass is a few dictionary look-ups per character (one per distinct
term length), at most ``MAX_REGEX`` expressions, and the output at most ``MAX_GROWTH`` times
the input (plus ``MAX_SAY``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import re2

MAX_ENTRIES = 100_000
MAX_REGEX = 256  # each is a pass over the line
MAX_TERM = 200  # characters of a term or pattern
MAX_SAY = 200
MAX_GROWTH = 4
MAX_SCOPES = 64  # (voice, language) pairs whose matchers are kept built
_SURROGATE = re.compile("[\ud800-\udfff]")
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the error comes back as an exception, named per entry
_RE2_OPTIONS.max_mem = 8 << 20
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_GROUP_REF = re.compile(r"\\(\d)|\\g<(\w+)>")


class DictionaryError(ValueError):
    """An entry that cannot be used; the message names the entry."""


@dataclass(frozen=True, slots=True)
class Entry:
    term: str
    say: str
    regex: bool = False
    voices: tuple[str, ...] = ()  # empty: every voice
    languages: tuple[str, ...] = ()  # empty: every language

    def applies(self, voice: str, language: str) -> bool:
        return (not self.voices or voice in self.voices) and (
            not self.languages or language in self.languages
        )

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"term": self.term, "say": self.say}
        if self.regex:
            out["regex"] = True
        if self.voices:
            out["voices"] = list(self.voices)
        if self.languages:
            out["languages"] = list(self.languages)
        return out


def _names(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise DictionaryError(f"{key} must be a list of names")
    return tuple(value[:64])


def parse_entry(raw: Any) -> Entry:
    if not isinstance(raw, Mapping):
        raise DictionaryError("expected a mapping with term and say")
    unknown = set(raw) - {"term", "say", "regex", "voices", "languages"}
    if unknown:
        raise DictionaryError(f"unknown key(s) {sorted(map(str, unknown))}")
    term, say, regex = raw.get("term"), raw.get("say", ""), raw.get("regex", False)
    if not isinstance(term, str) or not term or len(term) > MAX_TERM:
        raise DictionaryError(f"term must be text of 1-{MAX_TERM} characters")
    if not isinstance(say, str) or len(say) > MAX_SAY:
        raise DictionaryError(f"say must be text of at most {MAX_SAY} characters")
    if not isinstance(regex, bool):
        raise DictionaryError("regex must be true or false")
    entry = Entry(
        term,
        say,
        regex,
        _names(raw.get("voices"), "voices"),
        _names(raw.get("languages"), "languages"),
    )
    if any(_SURROGATE.search(s) for s in (term, say, *entry.voices, *entry.languages)):
        # "\ud800" is valid JSON but no text: the file could never be written again
        raise DictionaryError("holds a lone surrogate (\\ud800-\\udfff), which is not text")
    if regex:
        _Rewrite(entry)  # compiles, or says why not
    return entry


def parse_entries(raw: Any) -> list[Entry]:
    """A dictionary file's content (a list of entries); the error names the entry's number."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise DictionaryError("a dictionary is a list of entries (- term: ..., say: ...)")
    if len(raw) > MAX_ENTRIES:
        raise DictionaryError(f"{len(raw)} entries; at most {MAX_ENTRIES}")
    out = []
    for i, item in enumerate(raw):
        try:
            out.append(parse_entry(item))
        except DictionaryError as exc:
            raise DictionaryError(f"entry {i + 1}: {exc}") from None
    if sum(e.regex for e in out) > MAX_REGEX:
        raise DictionaryError(f"more than {MAX_REGEX} regular expressions")
    return out


class _Rewrite:
    """One regular-expression entry. The replacement's group references (\\1, \\g<name>) are
    expanded here: the binding's own expansion garbles non-ASCII replacements."""

    def __init__(self, entry: Entry) -> None:
        try:
            self.pattern = re2.compile(entry.term, _RE2_OPTIONS)
        except re2.error as exc:
            why = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
            raise DictionaryError(
                f"{entry.term!r} is not a regular expression RE2 runs: {why}"
            ) from None
        self.parts: list[str | int] = []
        pos = 0
        for m in _GROUP_REF.finditer(entry.say):
            self.parts.append(entry.say[pos : m.start()])
            ref = m.group(1) or m.group(2)
            group = int(ref) if ref.isdigit() else self.pattern.groupindex.get(ref)
            if group is None or group > self.pattern.groups:
                raise DictionaryError(f"say refers to a group {ref!r} the pattern lacks")
            self.parts.append(group)
            pos = m.end()
        self.parts.append(entry.say[pos:])

    def __call__(self, text: str) -> str:
        return self.pattern.sub(self._expand, text)

    def _expand(self, m: Any) -> str:
        return "".join(p if isinstance(p, str) else (m.group(p) or "") for p in self.parts)


def _edge(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


class _Terms:
    """Every plain term of one scope: longest match first, one pass."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        self.table: dict[str, str] = {}
        for e in entries:
            self.table.setdefault(e.term.translate(_ASCII_LOWER), e.say)
        self.lengths = sorted({len(t) for t in self.table}, reverse=True)

    def __call__(self, text: str) -> str:
        if not self.table:
            return text
        low = text.translate(_ASCII_LOWER)
        out: list[str] = []
        i, n = 0, len(text)
        while i < n:
            for length in self.lengths:
                end = i + length
                said = self.table.get(low[i:end]) if end <= n else None
                if said is not None and not (
                    (_edge(low[i]) and i > 0 and _edge(low[i - 1]))
                    or (_edge(low[end - 1]) and end < n and _edge(low[end]))
                ):
                    out.append(said)
                    i = end
                    break
            else:
                out.append(text[i])
                i += 1
        return "".join(out)


class Dictionary:
    def __init__(self, entries: Sequence[Entry]) -> None:
        self.entries = list(entries)
        self._scopes: dict[tuple[str, str], tuple[list[_Rewrite], _Terms]] = {}
        self._rewrites = {id(e): _Rewrite(e) for e in self.entries if e.regex}

    def __len__(self) -> int:
        return len(self.entries)

    def apply(self, text: str, voice: str = "", language: str = "") -> str:
        if not self.entries or not text:
            return text
        rewrites, terms = self._scope(voice, language)
        limit = MAX_GROWTH * len(text) + MAX_SAY
        for rewrite in rewrites:
            text = rewrite(text)[:limit]
        return terms(text)[:limit]

    def _scope(self, voice: str, language: str) -> tuple[list[_Rewrite], _Terms]:
        key = (voice, language)
        scope = self._scopes.get(key)
        if scope is None:
            mine = [e for e in self.entries if e.applies(voice, language)]
            rewrites = [self._rewrites[id(e)] for e in mine if e.regex]
            scope = (rewrites, _Terms(e for e in mine if not e.regex))
            if len(self._scopes) >= MAX_SCOPES:
                self._scopes.clear()
            self._scopes[key] = scope
        return scope
