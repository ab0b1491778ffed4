"""The small JSON state files the daemon keeps for itself (mutes, viewers' voices): where they
live, read bounded, a bad one moved aside, written whole through a rename.

A crash never leaves half a file (a temporary file and ``os.replace``); a file that cannot be
read, or is larger than its bound, is renamed ``NAME.bad-<time>`` (kept for the operator, never
overwritten) and the daemon starts without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("ishowtts.pipeline.statefile")


class BadState(ValueError):
    """A state file's content is not what it should be (raise it while reading one)."""


def default_path(config_dir: Path, name: str, env: dict[str, str] | None = None) -> Path:
    """Under the service's state directory when systemd gives one (``StateDirectory=``: the
    config folder is read-only there), else next to the config file."""
    env = dict(os.environ) if env is None else env
    state = env.get("STATE_DIRECTORY", "").split(":")[0].strip()
    return (Path(state) if state else config_dir) / name


def setting(value: str | None, config_dir: Path, name: str) -> Path | None:
    """A state file's config setting as a path: "auto" (``default_path``), a path relative to
    the config's folder, or None (null: kept in memory only)."""
    if value is None:
        return None
    if value == "auto":
        return default_path(config_dir, name)
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else config_dir / path


def read(path: Path, what: str, max_bytes: int) -> Any | None:
    """The file's JSON, or None when there is none or it cannot be used (logged, moved aside)."""
    try:
        with path.open("rb") as f:
            raw = f.read(max_bytes + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.error(f"{what}_unreadable", path=str(path), error=str(exc))
        return None
    try:
        if len(raw) > max_bytes:
            raise BadState(f"larger than {max_bytes} bytes")
        return json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        set_aside(path, what, exc)
        return None


def set_aside(path: Path, what: str, exc: Exception) -> None:
    """Keep a bad file for the operator under another name; the daemon goes on without it."""
    aside = path.with_name(f"{path.name}.bad-{int(time.time())}")
    with contextlib.suppress(OSError):
        path.rename(aside)
    log.error(
        f"{what}_file_invalid",
        path=str(path),
        error=f"{type(exc).__name__}: {exc}"[:300],
        moved_to=str(aside),
        advice="starting without it; the old file is kept",
    )


def write(path: Path, data: Any, what: str) -> str | None:
    """Write ``data`` whole; None, or the error (the caller keeps its state in memory)."""
    body = json.dumps(data, ensure_ascii=False, indent=1)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(body + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        log.error(f"{what}_not_saved", path=str(path), error=str(exc))
        return f"{path}: {exc.strerror or exc}"
    return None
