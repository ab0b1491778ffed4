"""The pronunciation dictionary in use: the streamer's own file over the starter dictionary.

The file (JSON: a list of ``{"term": ..., "say": ...}``, one per line as the console writes it;
JSON because 100,000 entries parse in a tenth of a second, where YAML takes ten) is read at
start, read again when it changes on disk (looked at most once a second) and written by the
console. A file that cannot
be used is refused whole with one message naming the entry, and the dictionary in use stays
(at start: the starter alone); the console shows the message.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from importlib import resources
from pathlib import Path
from typing import Any

import structlog
import yaml

from . import statefile
from .pronounce import Dictionary, DictionaryError, Entry, parse_entries

log = structlog.get_logger("ishowtts.pipeline.dictionary")

FILE_NAME = "dictionary.json"
MAX_FILE_BYTES = 16 << 20  # 100,000 entries take ~5 MB
POLL_S = 1.0


def starter() -> list[Entry]:
    """The bundled starter (YAML: small, and commented with each entry's reason)."""
    data = resources.files("ishowtts").joinpath("data/slang_zh.yaml").read_text("utf-8")
    return parse_entries(yaml.safe_load(data))


def read_entries(path: Path) -> list[Entry]:
    """The file's entries ([] when there is none); DictionaryError says what is wrong."""
    try:
        # Without blocking: a FIFO put there would hang the start (and, polled, the loop).
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise DictionaryError("not a regular file")
            raw = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise DictionaryError(f"cannot read it: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise DictionaryError(f"larger than {MAX_FILE_BYTES >> 20} MB")
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise DictionaryError(f"not JSON: {str(exc)[:300]}") from None
    return parse_entries(data)


class Pronunciation:
    def __init__(self, path: Path | None, use_starter: bool) -> None:
        self.path = path
        self.error: str | None = None  # why the file on disk is not the one in use
        self._starter = starter() if use_starter else []
        self.entries: list[Entry] = []
        self._stamp: tuple[int, int] | None = None
        self._looked = float("-inf")
        self.dictionary = Dictionary(self._starter)
        self.poll(force=True)

    def reconfigure(self, path: Path | None, use_starter: bool) -> None:
        if use_starter != bool(self._starter):
            self._starter = starter() if use_starter else []
        self.path = path
        self._use(self.entries)
        self.poll(force=True)

    def apply(self, text: str, voice: str = "", language: str = "") -> str:
        return self.dictionary.apply(text, voice, language)

    def poll(self, now: float | None = None, force: bool = False) -> None:
        """Read the file again if it changed since it was last read (at most every POLL_S)."""
        now = time.monotonic() if now is None else now
        if self.path is None or (not force and now - self._looked < POLL_S):
            return
        self._looked = now
        try:
            st = self.path.stat()
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp == self._stamp and not force:
            return
        self._stamp = stamp
        try:
            entries = read_entries(self.path)
        except DictionaryError as exc:
            self.error = f"{self.path}: {exc}"
            log.error("dictionary_invalid", path=str(self.path), error=str(exc), kept=len(self))
            return
        self._use(entries)
        self.error = None
        log.info("dictionary_loaded", path=str(self.path), entries=len(entries))

    def save(self, raw: Any) -> int:
        """The console's edit: checked whole, written through a rename, in use at once."""
        entries = parse_entries(raw)
        if self.path is None:
            raise DictionaryError("dictionary.file is null: there is no file to write")
        if self.error is not None:  # writing would replace the streamer's file by what is in use
            raise DictionaryError(f"{self.error}; fix or remove the file before editing here")
        rows = (json.dumps(e.as_dict(), ensure_ascii=False) for e in entries)
        body = "[\n" + ",\n".join(rows) + "\n]\n"
        try:  # a fresh temporary file of a random name: a link planted in the folder is not used
            statefile.write_atomic(self.path, body)
        except OSError as exc:
            raise DictionaryError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        self._use(entries)
        self.error = None
        with contextlib.suppress(OSError):
            st = self.path.stat()
            self._stamp = (st.st_mtime_ns, st.st_size)
        log.info("dictionary_saved", path=str(self.path), entries=len(entries))
        return len(entries)

    def _use(self, entries: list[Entry]) -> None:
        self.entries = entries
        self.dictionary = Dictionary([*entries, *self._starter])  # yours first: they win

    def __len__(self) -> int:
        return len(self.dictionary)
