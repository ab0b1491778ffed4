"""Where ``ishowtts logs`` reads from: the unit's journal (through ``journalctl``), a file
(followed like ``tail -f``) or stdin, as lines of bytes, each bounded: a line longer than
``MAX_LINE`` is skipped (yielded as None, to be counted), never held whole in memory."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..errors import Temporary, UsageError

MAX_LINE = 1 << 20  # bytes: a JSON log line is a few hundred; a chat text is bounded upstream
POLL_S = 0.25  # a followed file is checked this often for new lines


def read_lines(
    stream: IO[bytes], follow: bool = False, path: Path | None = None
) -> Iterator[bytes | None]:
    """Lines of ``stream`` (without their newline); None for each over-long line. With
    ``follow``, at the end it waits for more, and starts again from the top when ``path`` was
    truncated (a log rotated by copy and truncate)."""
    partial = b""
    skipping = False  # inside an over-long line: drop until its end
    while True:
        chunk = stream.readline(MAX_LINE + 1)
        if not chunk:
            if not follow:
                if partial and not skipping:
                    yield partial
                return
            time.sleep(POLL_S)
            if path is not None and _truncated(stream, path):
                stream.seek(0)
                partial, skipping = b"", False
            continue
        if skipping:
            skipping = not chunk.endswith(b"\n")
            continue
        partial += chunk
        if partial.endswith(b"\n"):
            yield partial[:-1]
            partial = b""
        elif len(partial) > MAX_LINE:
            yield None
            partial, skipping = b"", True


def _truncated(stream: IO[bytes], path: Path) -> bool:
    try:
        return path.stat().st_size < stream.tell()
    except OSError:  # gone while rotating: the next look finds the new one
        return False


@contextlib.contextmanager
def open_source(
    source: str | None,
    *,
    follow: bool,
    unit: str,
    user_unit: bool,
    journal_dir: Path | None,
    since: str | None,
    lines: int | None,
) -> Iterator[Iterator[bytes | None]]:
    """The lines of ``source``: a file, ``-`` for stdin, or (None) the unit's journal."""
    if source == "-":
        yield read_lines(sys.stdin.buffer)
    elif source is not None:
        path = Path(source)
        try:
            stream = path.open("rb")
        except OSError as exc:
            raise UsageError(f"cannot read {source}: {exc.strerror or exc}") from None
        with stream:
            if lines is not None:
                _seek_last_lines(stream, lines)
            yield read_lines(stream, follow=follow, path=path if follow else None)
    else:
        with _journal(unit, user_unit, journal_dir, follow, since, lines) as out:
            yield read_lines(out, follow=False)  # journalctl -f itself waits for more


@contextlib.contextmanager
def _journal(
    unit: str,
    user_unit: bool,
    journal_dir: Path | None,
    follow: bool,
    since: str | None,
    lines: int | None,
) -> Iterator[IO[bytes]]:
    """``journalctl``'s output for the unit, message text only (``-o cat``)."""
    journalctl = shutil.which("journalctl")
    if journalctl is None:
        raise Temporary("journalctl not found: give a log file, or - to read stdin")
    command = [journalctl, "--no-pager", "-o", "cat"]
    command += [f"--user-unit={unit}"] if user_unit else ["-u", unit]
    if journal_dir is not None:
        command += ["-D", str(journal_dir)]
    if since is not None:
        command += [f"--since={since}"]
    if lines is not None:
        command += [f"--lines={lines}"]
    if follow:
        command += ["--follow"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    try:
        yield proc.stdout
    finally:
        if proc.poll() is None:
            proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        proc.stdout.close()


def _seek_last_lines(stream: IO[bytes], n: int, block: int = 1 << 16) -> None:
    """Position ``stream`` at the start of its last ``n`` lines (reading backwards by blocks)."""
    end = stream.seek(0, os.SEEK_END)
    pos, seen = end, 0
    while pos > 0:
        step = min(block, pos)
        pos -= step
        stream.seek(pos)
        data = stream.read(step)
        if pos + step == end and data.endswith(b"\n"):
            data = data[:-1]  # the last line's own newline does not start a line
        i = len(data)
        while (i := data.rfind(b"\n", 0, i)) >= 0:
            seen += 1
            if seen == n:
                stream.seek(pos + i + 1)
                return
    stream.seek(0)
