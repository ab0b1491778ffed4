"""Which attention kernels a FastDiT step may use, preferred one first, set around each step.

The setting is process-wide in torch (``sdpa_kernel``), and in compiled code the kernel is
fixed when the step is traced, so threads that run steps at once must agree on it.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
from collections.abc import Iterator

from torch.nn.attention import SDPBackend, sdpa_kernel

# Preferred attention kernels, first choice first; later ones serve shapes or masks the first
# does not support.
ATTENTION = {
    "flash": [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH],
    "cudnn": [
        SDPBackend.CUDNN_ATTENTION,
        SDPBackend.FLASH_ATTENTION,
        SDPBackend.EFFICIENT_ATTENTION,
        SDPBackend.MATH,
    ],
    "efficient": [SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH],
    "math": [SDPBackend.MATH],
}


def _prefer(backends: list[SDPBackend]) -> contextlib.AbstractContextManager[None]:
    """Allow these attention kernels, in this order where torch takes an order (>= 2.6)."""
    if "set_priority" in inspect.signature(sdpa_kernel).parameters:
        return sdpa_kernel(backends, set_priority=True)
    return sdpa_kernel(backends)


class _SharedPreference:
    """``_prefer`` for threads that run steps at once (a compile in the background while
    another thread speaks): the first to enter sets the preference, the last to leave restores
    what was there. Each thread restoring on its own way out would undo the other's setting
    midway, and a step traced then would keep the wrong kernel. Threads asking for different
    preferences at once get the first one's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._held: contextlib.AbstractContextManager[None] | None = None

    def busy(self) -> bool:
        """Whether a thread is setting or restoring the preference (holds the lock)."""
        return self._lock.locked()

    @contextlib.contextmanager
    def __call__(self, backends: list[SDPBackend]) -> Iterator[None]:
        with self._lock:
            if self._users == 0:
                self._held = _prefer(backends)
                self._held.__enter__()
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0 and self._held is not None:
                    self._held.__exit__(None, None, None)
                    self._held = None


prefer = _SharedPreference()
