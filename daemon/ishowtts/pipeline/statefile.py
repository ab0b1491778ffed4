"""The small JSON state files the daemon keeps for itself (mutes, viewers' voices, the paid
lines saved for the next start): where they live, read bounded and safely, a bad one moved
aside, written whole through a rename, locked by the one daemon that uses them.

Whatever lies at a state file's path, a start goes on: a file that is not a regular file (a
symbolic link, a FIFO, a socket), is larger than its bound, is not UTF-8, is not JSON or nests
too deep is renamed ``NAME.bad-<time>`` (kept for the operator, never overwritten) with one
error line, and the daemon starts without it. A folder or a device is never moved nor written
over (a setting naming ``/tmp``, ``~`` or ``/dev/null`` must not rename or replace it): it is
named in the error line and the daemon keeps that state in memory. A file is read through one
descriptor opened without following links and without blocking, and at most its bound plus one
byte is read: its size is what was read, never what ``stat`` said (``/dev/zero`` says 0). A
write goes to a fresh temporary file of an unpredictable name, created exclusively (a link
planted in the folder is never followed), then renamed over the file: a crash never leaves half
a file.

Daemons whose configs share a folder (or a state directory) must not share state: ``keyed``
names carry the config's name and a hash of its path, and ``Locks`` holds each file (``flock``
on ``NAME.lock``, released when the process ends, however it ends) for the daemon using it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import structlog

from ..errors import ConfigInvalid

log = structlog.get_logger("ishowtts.pipeline.statefile")

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class BadState(ValueError):
    """A state file's content is not what it should be (raise it while reading one)."""


class StateInUse(ConfigInvalid):
    """Another running daemon holds this state file: each config needs its own (exit 2)."""


# ---- where ---------------------------------------------------------------------------------


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


def keyed(name: str, config_path: Path) -> str:
    """``name`` (``mutes.json``) made one config's own: ``mutes-config-1a2b3c4d.json``."""
    digest = hashlib.sha256(str(config_path.resolve()).encode()).hexdigest()[:8]
    stem = _UNSAFE.sub("_", config_path.stem)[:40] or "config"
    base, dot, suffix = name.partition(".")
    return f"{base}-{stem}-{digest}{dot}{suffix}"


def distinct(files: Iterable[tuple[str, Path | None]]) -> None:
    """Raise ``ConfigInvalid`` naming both keys when two settings name one file (each would
    overwrite the other's content, or lock it against this very daemon)."""
    seen: dict[Path, str] = {}
    for key, path in files:
        if path is None:
            continue
        where = Path(os.path.abspath(path))
        other = seen.setdefault(where, key)
        if other != key:
            raise ConfigInvalid(f"{other} and {key} name one file ({where}): give each its own")


def earlier(path: Path, old_name: str, key: str) -> None:
    """Say so when the file an earlier version kept under ``old_name`` (``mutes.json``) lies
    where this config's own default file does not exist yet: it is not read (it may be another
    config's), and an upgrade would otherwise lose a streamer's mute list without a word."""
    old = path.with_name(old_name)
    if os.path.lexists(path) or not old.is_file() or old.is_symlink():
        return
    log.warning(
        "state_file_not_read",
        key=key,
        path=str(old),
        now=str(path),
        advice=f"kept by an earlier version and no longer read; to keep it, stop the daemon "
        f"and rename it to {path.name}",
    )


# ---- reading -------------------------------------------------------------------------------


def read(path: Path, what: str, max_bytes: int) -> Any | None:
    """The file's JSON, or None when there is none or it cannot be used (logged; moved aside
    unless it could not even be opened, a folder without permission say)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symbolic link
            set_aside(path, what, BadState("a symbolic link, not a regular file"))
        else:
            log.error(f"{what}_unreadable", path=str(path), error=str(exc))
        return None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            set_aside(path, what, BadState(f"not a regular file ({_kind(mode)})"))
            return None
        raw = _read_at_most(fd, max_bytes + 1)
    except OSError as exc:
        log.error(f"{what}_unreadable", path=str(path), error=str(exc))
        return None
    finally:
        os.close(fd)
    try:
        if len(raw) > max_bytes:
            raise BadState(f"larger than {max_bytes} bytes")
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, digits, nesting
        set_aside(path, what, exc)
        return None


def read_list(path: Path, what: str, key: str, max_bytes: int) -> list[Any] | None:
    """The list a state file keeps under ``key`` (``{"key": [...]}``), or None: no file, or one
    that cannot be used (set aside, as by ``read``, also when it holds no such list)."""
    data = read(path, what, max_bytes)
    if data is None:
        return None
    rows = data.get(key) if isinstance(data, dict) else None
    if not isinstance(rows, list):
        set_aside(path, what, BadState(f"no {key!r} list"))
        return None
    return rows


def _read_at_most(fd: int, limit: int) -> bytes:
    parts: list[bytes] = []
    while limit > 0 and (part := os.read(fd, min(limit, 1 << 20))):
        parts.append(part)
        limit -= len(part)
    return b"".join(parts)


def _kind(mode: int) -> str:
    kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a folder"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "a device")


def set_aside(path: Path, what: str, exc: Exception) -> None:
    """Keep a bad file (a link is moved, not its target) for the operator under a name of its
    own; the daemon goes on without it. A folder or a device stays where it is."""
    if _not_ours(path):
        log.error(
            f"{what}_file_invalid",
            path=str(path),
            error=f"{type(exc).__name__}: {exc}"[:300],
            not_moved="a folder or a device is never moved: point the setting at a file",
            advice="starting without it; nothing is saved there",
        )
        return
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.bad-{stamp}")
    n = 1
    while os.path.lexists(aside) and n < 100:
        n += 1
        aside = path.with_name(f"{path.name}.bad-{stamp}-{n}")
    try:
        os.rename(path, aside)
        moved: dict[str, str] = {"moved_to": str(aside)}
    except OSError as move:
        moved = {"not_moved": str(move)}
    log.error(
        f"{what}_file_invalid",
        path=str(path),
        error=f"{type(exc).__name__}: {exc}"[:300],
        **moved,
        advice="starting without it; the old file is kept",
    )


# ---- writing -------------------------------------------------------------------------------


def _not_ours(path: Path) -> bool:
    """A folder or a device at ``path`` (not through a link): something the operator named by
    mistake, which renaming or replacing would break (``/tmp``, ``/dev/null`` as root)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    return stat.S_ISDIR(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (raises OSError): a crash leaves the old file or the new
    one; the temporary file is created exclusively under a random name (mode 0600). A folder
    or a device at ``path`` is never replaced."""
    if _not_ours(path):
        raise OSError(errno.EEXIST, "a folder or a device is there, not a state file", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def dumps(data: Any) -> str:
    """``data`` as JSON an editor shows as written (CJK as is); a lone surrogate from chat,
    which UTF-8 cannot carry, makes it all ASCII escapes instead of an encoding error."""
    text = json.dumps(data, ensure_ascii=False, indent=1)
    try:
        text.encode()
    except UnicodeEncodeError:
        return json.dumps(data, indent=1)
    return text


def write(path: Path, data: Any, what: str) -> str | None:
    """Write ``data`` whole; None, or the error (the caller keeps its state in memory)."""
    try:
        write_atomic(path, dumps(data) + "\n")
    except OSError as exc:
        log.error(f"{what}_not_saved", path=str(path), error=str(exc))
        return f"{path}: {exc.strerror or exc}"
    return None


# ---- one daemon per file -------------------------------------------------------------------


class Locks:
    """The state files one daemon holds, each by an ``flock`` on ``NAME.lock``."""

    def __init__(self) -> None:
        self._held: list[int] = []

    def claim(self, path: Path, key: str) -> None:
        """Lock ``path`` for this process, or raise ``StateInUse`` naming ``key`` (the config
        key that chose the file). A lock that cannot be made at all (a read-only folder) is
        logged and skipped: the file itself may still be readable."""
        lock = path.with_name(path.name + ".lock")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            log.warning("state_not_locked", path=str(path), error=str(exc))
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                log.warning("state_not_locked", path=str(path), error=str(exc))
                return
            pid = f" (pid {holder})" if holder.isdigit() else ""
            raise StateInUse(
                f"{key}: {path} is in use by another running ishowtts{pid}; give each config "
                f"its own {key} (or stop the other daemon)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._held.append(fd)

    def release(self) -> None:
        while self._held:
            os.close(self._held.pop())  # closing the descriptor releases its lock
