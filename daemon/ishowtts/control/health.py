"""Why the daemon is degraded, if it is: what ``/healthz``, ``/status`` and the metrics report.

Two ways in, so each part uses the one that fits it:

- ``report(key, reason)`` / ``clear(key)``: a part that *sees* a fault happen (the synth worker
  failing message after message, the log unable to write) sets a condition and clears it when
  it heals. Thread-safe: the engine's thread may call it.
- ``add_check(key, fn)``: a part whose *state* says it (a connector that gave up, a player
  without a stream) is asked at request time; ``fn`` returns the reason or None.

Keys are short fixed names (``engine``, ``player``, ``log``, ``connector:<name>``), so the
metric's label set stays bounded. A key set by ``report`` and a check of the same key are
independent; either one makes the key degraded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

log = structlog.get_logger("ishowtts.control.health")

Check = Callable[[], "str | None"]


class Health:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reported: dict[str, str] = {}
        self._checks: dict[str, Check] = {}

    def report(self, key: str, reason: str) -> None:
        """``key`` is degraded because of ``reason`` (logged when it starts or changes)."""
        with self._lock:
            before = self._reported.get(key)
            self._reported[key] = reason
        if before != reason:
            log.error("degraded", part=key, reason=reason)

    def clear(self, key: str) -> None:
        with self._lock:
            before = self._reported.pop(key, None)
        if before is not None:
            log.info("recovered", part=key, was=before)

    def add_check(self, key: str, check: Check) -> None:
        with self._lock:
            self._checks[key] = check

    def remove_check(self, key: str) -> None:
        """The part is gone (a connector removed by a reload): nothing more to report."""
        with self._lock:
            self._checks.pop(key, None)
            self._reported.pop(key, None)

    def problems(self) -> dict[str, str]:
        """Every degraded part and why, in key order; empty when all is well."""
        with self._lock:
            out = dict(self._reported)
            checks = list(self._checks.items())
        for key, check in checks:
            try:
                reason = check()
            except Exception as exc:  # a broken check is itself worth reporting
                reason = f"health check failed: {exc!r}"
            if reason:
                out[key] = f"{out[key]}; {reason}" if key in out else reason
        return dict(sorted(out.items()))
