"""The operator's runtime mute list: users muted from the console, kept in a small JSON state
file so a mute survives a restart, and checked by the filters beside the config's block list.

A user is matched by platform and id where the platform gives one (names change), any of the
user's ids counting (``User.alt_ids``), else by name. The file is written whole through a
temporary file and a rename, so a crash never leaves half a list; a file that cannot be read is
moved aside (kept for the operator, never overwritten) and the daemon starts with an empty list;
an entry that cannot be read is skipped (counted), the rest kept (see ``statefile``).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog

from . import statefile

log = structlog.get_logger("ishowtts.pipeline.mutes")

MAX_MUTES = 5000  # a list this long is a config's job (filters.users.block), not a click's
MAX_FIELD = 128
FILE_NAME = "mutes.json"
MAX_FILE_BYTES = 4 << 20  # 5000 mutes take ~1 MB


class MuteError(ValueError):
    """A mute request that cannot be honoured (empty, too long, list full)."""


@dataclass(frozen=True, slots=True)
class Mute:
    platform: str
    uid: str
    name: str
    at: float  # wall time it was muted

    def covers(self, platform: str, ids: tuple[str, ...], name: str) -> bool:
        """Whether this mute names that user (any of the user's ids, else the name)."""
        if platform != self.platform:
            return False
        return self.uid in ids if self.uid else bool(name) and name == self.name

    @property
    def key(self) -> tuple[str, str]:
        return (self.platform, self.uid) if self.uid else (self.platform, "name:" + self.name)


def default_path(config_path: Path, env: dict[str, str] | None = None) -> Path:
    """Under the service's state directory when systemd gives one, else next to the config;
    named after the config, so daemons whose configs share a folder keep their own lists."""
    name = statefile.keyed(FILE_NAME, config_path)
    return statefile.default_path(config_path.parent, name, env)


class MuteList:
    def __init__(self, path: Path | None, load: bool = True) -> None:
        self.path = path  # None: in memory only (tests, the API disabled)
        self._by_key: dict[tuple[str, str], Mute] = {}
        self._names: dict[tuple[str, str], Mute] = {}  # (platform, name) → a mute by name
        self.save_error: str | None = None
        if load:
            self.load()

    # -- queries -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_key)

    def matches(self, platform: str, ids: tuple[str, ...], name: str) -> bool:
        """Whether a user with these ids (``User.id`` and every ``alt_ids``: a Bilibili
        open-platform user has an open_id and a union_id, and a mute may name either) or this
        name is muted on ``platform``."""
        for uid in ids:
            mute = self._by_key.get((platform, uid)) if uid else None
            if mute is not None and mute.uid == uid:  # never a by-name key that looks alike
                return True
        return bool(name) and (platform, name) in self._names

    def list(self) -> list[dict[str, Any]]:
        return [asdict(m) for m in sorted(self._by_key.values(), key=lambda m: m.at)]

    # -- changes -------------------------------------------------------------------------------

    def add(self, platform: str, uid: str, name: str) -> Mute:
        platform, uid, name = _clean(platform), _clean(uid), _clean(name)
        if not platform or not (uid or name):
            raise MuteError("a mute needs a platform and a user id or name")
        mute = Mute(platform, uid, name, round(time.time(), 3))
        if mute.key not in self._by_key and len(self._by_key) >= MAX_MUTES:
            raise MuteError(f"the mute list is full ({MAX_MUTES}); use filters.users.block")
        self._put(mute)
        self._save()
        return mute

    def remove(self, platform: str, uid: str, name: str) -> bool:
        key = Mute(_clean(platform), _clean(uid), _clean(name), 0.0).key
        mute = self._by_key.pop(key, None)
        if mute is None:
            return False
        if self._names.get((mute.platform, mute.name)) is mute:
            del self._names[(mute.platform, mute.name)]
        self._save()
        return True

    # -- the file ------------------------------------------------------------------------------

    def _put(self, mute: Mute) -> None:
        old = self._by_key.get(mute.key)
        if old is not None and self._names.get((old.platform, old.name)) is old:
            del self._names[(old.platform, old.name)]
        self._by_key[mute.key] = mute
        if not mute.uid:
            self._names[(mute.platform, mute.name)] = mute

    def load(self) -> None:
        """Read the file (the daemon does so once it holds the file's lock)."""
        path = self.path
        entries = (
            None if path is None else statefile.read_list(path, "mutes", "users", MAX_FILE_BYTES)
        )
        if path is None or entries is None:
            return
        skipped = 0
        for entry in entries[:MAX_MUTES]:
            try:
                self._put(_entry(entry))
            except (ValueError, TypeError, KeyError, AttributeError, ArithmeticError):
                skipped += 1  # one bad entry must not lift every other mute
        if skipped:
            log.warning("mutes_bad_entries", path=str(path), skipped=skipped)
        log.info("mutes_loaded", path=str(path), users=len(self._by_key))

    def _save(self) -> None:
        if self.path is not None:
            # Kept in memory on failure; the console shows this so the operator knows.
            data = {"version": 1, "users": self.list()}
            self.save_error = statefile.write(self.path, data, "mutes")


def _entry(entry: Any) -> Mute:
    if not isinstance(entry, dict):
        raise TypeError("not an object")
    at = float(entry.get("at", 0.0))
    return Mute(
        _clean(str(entry["platform"])),
        _clean(str(entry.get("uid", ""))),
        _clean(str(entry.get("name", ""))),
        at if math.isfinite(at) else 0.0,
    )


def _clean(value: str) -> str:
    value = value.strip()
    if len(value) > MAX_FIELD:
        raise MuteError(f"longer than {MAX_FIELD} characters")
    return value
