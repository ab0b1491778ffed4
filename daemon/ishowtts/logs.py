"""structlog set-up: JSON lines under systemd or any pipe, colours on a terminal."""

from __future__ import annotations

import atexit
import logging
import os
import sys
from typing import Literal, TextIO, cast

import structlog


class SafeStream:
    """The log's stream (stderr). A write that fails (disk full under a file redirect, a
    closed pipe) is counted and swallowed: losing log lines must never lose chat, and before
    this every log call on the intake path raised and stopped reading chat. ``problem()``
    says so for /healthz until a write gets through again."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.failures = 0
        self.error: str | None = None  # the last failure, None once a line gets through
        self._line_failed = False

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        self._line_failed = True
        self.error = f"{type(exc).__name__}: {exc}"

    def write(self, text: str) -> int:
        self._line_failed = False
        try:
            return self.stream.write(text)
        except (OSError, ValueError) as exc:  # ValueError: the stream was closed
            self._failed(exc)
            return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except (OSError, ValueError) as exc:
            self._failed(exc)
        else:
            # A line-buffered stream flushes (and fails) inside write(); the flush after it
            # then has nothing left to write and succeeds: that is no recovery.
            if not self._line_failed:
                self.error = None

    def isatty(self) -> bool:
        return self.stream.isatty()

    def problem(self) -> str | None:
        if self.error is None:
            return None
        return f"log writes failing ({self.failures} so far): {self.error}"


_stream: SafeStream | None = None


def _settle_at_exit() -> None:
    """At exit, Python flushes stderr once more, and a failure there turns the exit status
    into 120 (a clean stop on a full disk read as a crash). Bytes a failed log write left in
    the stream's buffer are lost either way: flush once, and if that fails, give the
    interpreter a stream that can be flushed."""
    if _stream is None or _stream.error is None:
        return
    try:
        _stream.stream.flush()
    except (OSError, ValueError):
        if _stream.stream is sys.stderr:
            sys.stderr = open(os.devnull, "w")  # noqa: SIM115  # lives until the process ends


atexit.register(_settle_at_exit)


def problem() -> str | None:
    """Why log lines are being lost right now, or None (a health check)."""
    return _stream.problem() if _stream is not None else None


def _own_stderr() -> TextIO:
    """The log's own handle on the process's stderr (a duplicate of fd 2) when sys.stderr is
    fd 2. sounddevice points fd 2 at /dev/null while PortAudio starts (to hide ALSA's probing
    chatter), and the player restarts PortAudio to find a device or a sound server that came
    up: lines other threads log meanwhile must not be swallowed with it."""
    global _own
    try:
        if sys.stderr.fileno() != 2:
            return sys.stderr
    except (AttributeError, OSError, ValueError):  # replaced (tests capture it) or closed
        return sys.stderr
    if _own is None:
        encoding, errors = sys.stderr.encoding, sys.stderr.errors
        _own = open(os.dup(2), "w", encoding=encoding, errors=errors, buffering=1)  # noqa: SIM115
    return _own


_own: TextIO | None = None


def configure(level: str = "info", fmt: Literal["auto", "json", "console"] = "auto") -> None:
    global _stream
    _stream = SafeStream(_own_stderr())
    as_json = fmt == "json" or (fmt == "auto" and not _stream.isatty())
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: list[structlog.typing.Processor] = (
        [
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ]
        if as_json
        else [structlog.dev.ConsoleRenderer(colors=_stream.isatty())]
    )
    structlog.configure(
        processors=shared + renderer,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _stream)),  # duck-typed
        cache_logger_on_first_use=False,
    )
    _route_stdlib_logging(level, shared, renderer)


def _route_stdlib_logging(
    level: str,
    shared: list[structlog.typing.Processor],
    renderer: list[structlog.typing.Processor],
) -> None:
    """Libraries log through the standard logging module (huggingface_hub, aiohttp, torch,
    f5_tts) and warn through ``warnings``: render their records with our processors, so the
    journal holds only our lines (JSON under systemd), each with the library's logger name."""
    # Through the same safe stream as ours: a failing write is counted, not a traceback.
    handler = logging.StreamHandler(cast(TextIO, _stream or sys.stderr))
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
        )
    )
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    # Below warning, libraries are chatty (aiohttp access lines, hub progress): ours say enough.
    root.setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
    logging.captureWarnings(True)  # warnings.warn -> the "py.warnings" logger -> JSON
