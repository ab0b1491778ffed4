"""systemd's notify protocol (sd_notify): READY, STATUS, WATCHDOG, STOPPING over a datagram.

The protocol is a few lines: newline-separated ``KEY=value`` pairs in one datagram to the
AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a leading ``@`` names the abstract namespace).
Written here rather than pulled in: the small libraries for it are unmaintained and none
handles the watchdog's ``WATCHDOG_PID`` check. Without ``$NOTIFY_SOCKET`` (not under systemd,
or ``Type=simple``) every call is a no-op, so the daemon runs the same everywhere.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

import structlog

log = structlog.get_logger("ishowtts.shell.notify")

# A send failing with these may succeed later: the receiver's queue is full for now.
DELIVER_MAX_DELAY_S = 1.0
_TRANSIENT = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.EINTR})


def ready_fields(status: str = "") -> dict[str, str | int]:
    return {"READY": 1, **({"STATUS": status} if status else {})}


def reloading_fields() -> dict[str, str | int]:
    # MONOTONIC_USEC lets systemd ≥ 253 tie the reload to this moment.
    return {"RELOADING": 1, "MONOTONIC_USEC": time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}


def stopping_fields(status: str = "") -> dict[str, str | int]:
    return {"STOPPING": 1, **({"STATUS": status} if status else {})}


def socket_address(value: str) -> str | bytes:
    """``$NOTIFY_SOCKET`` → an address for ``sendto``; ``@name`` is abstract (``\\0name``)."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


def watchdog_interval(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """How often to ping the watchdog (half of ``WATCHDOG_USEC``), or None when it is off or
    meant for another process (``WATCHDOG_PID`` names a different pid)."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    owner = env.get("WATCHDOG_PID", "")
    if owner and owner != str(os.getpid() if pid is None else pid):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2e6 if value > 0 else None


class Notifier:
    """Sends notify messages; thread-safe (engine progress lines arrive from the GPU thread)."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._failed = False
        self._order: asyncio.Lock | None = None  # deliver() keeps RELOADING before READY
        self.last_errno: int | None = None  # of the last failed send

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if env is None else env
        return cls(env.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: str | int) -> bool:
        """One datagram of ``KEY=value`` lines; False if not under systemd or the send failed
        (logged once: a missing notify socket must never take the daemon down)."""
        if self.address is None:
            return False
        lines = [f"{k}={str(v).replace(chr(10), ' ')}" for k, v in fields.items()]
        data = ("\n".join(lines) + "\n").encode()
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(
                        socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                    )
                # Never block the event loop on a receiver that stopped reading.
                self._sock.sendto(data, socket.MSG_DONTWAIT, socket_address(self.address))
            except OSError as exc:
                self.last_errno = exc.errno
                if not self._failed:
                    log.warning("sd_notify_failed", socket=self.address, error=str(exc))
                    self._failed = True
                return False
        return True

    async def deliver(self, **fields: str | int) -> bool:
        """Send until it gets through (a full socket queue drops a datagram: READY=1 lost
        that way leaves systemd waiting until it kills the unit). Retries with backoff up to
        ``DELIVER_MAX_DELAY_S`` apart, in call order across callers, while the failure is a
        full queue; False when not under systemd or the socket is gone. Cancel to give up."""
        if self.address is None:
            return False
        if self._order is None:
            self._order = asyncio.Lock()
        delay = 0.01
        async with self._order:
            while not self.send(**fields):
                if self.last_errno not in _TRANSIENT:
                    return False
                await asyncio.sleep(delay)
                delay = min(DELIVER_MAX_DELAY_S, delay * 2)
        if self._failed:
            log.info("sd_notify_delivered", keys=",".join(fields))
            self._failed = False  # the next failure is worth a line again
        return True

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)

    # One try each; the service sends these three through deliver() (see ready_fields...).

    def ready(self, status: str = "") -> bool:
        return self.send(**ready_fields(status))

    def reloading(self) -> bool:
        return self.send(**reloading_fields())

    def stopping(self, status: str = "") -> bool:
        return self.send(**stopping_fields(status))

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


async def feed_watchdog(
    notifier: Notifier,
    interval: float,
    healthy: Callable[[], bool] = lambda: True,
) -> None:
    """Ping the watchdog every ``interval`` seconds from the event loop, so a loop that hangs
    stops the pings and systemd restarts the service. ``healthy`` returning False withholds a
    ping (a wedged part the loop can see but not fix)."""
    while True:
        if healthy():
            notifier.watchdog()
        else:
            log.error("watchdog_withheld", reason="unhealthy")
        await asyncio.sleep(interval)
