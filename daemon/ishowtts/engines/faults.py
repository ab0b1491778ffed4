"""Which engine errors a process cannot recover from, and which mean the weights are missing.

On torch ≥ 2.8 a device fault (an illegal memory access, a kernel that traps, an ECC error)
raises ``torch.AcceleratorError`` and leaves the CUDA context poisoned: every later CUDA call
in the process fails the same way, so rebuilding the engine cannot help; only a new process
can. Older torch raises a plain ``RuntimeError("CUDA error: ...")``. Out-of-memory is a
``RuntimeError`` too but recoverable (free, rebuild), so it never counts.
"""

from __future__ import annotations

import sys

from ..errors import DeviceFault
from .base import EngineBroken

# Device errors the CUDA runtime reports as sticky (the context is unusable afterwards) carry
# one of these; others (a bad argument, an unsupported op) fail one call only.
_FATAL_MARKS = (
    "CUDA error",
    "CUBLAS_STATUS_EXECUTION_FAILED",
    "CUBLAS_STATUS_INTERNAL_ERROR",
    "CUDNN_STATUS_EXECUTION_FAILED",
    "device-side assert",
)


class DeviceLost(EngineBroken, DeviceFault):
    """The device failed in a way this process cannot recover from: restart the process."""


def unrecoverable(exc: BaseException) -> bool:
    """True for a device fault that poisons the process (also when wrapped by an engine)."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if _fatal(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def _fatal(e: BaseException) -> bool:
    if isinstance(e, DeviceLost):
        return True
    torch = sys.modules.get("torch")  # never import torch for this: the fallback has none
    if torch is not None:
        if isinstance(e, torch.cuda.OutOfMemoryError):
            return False
        accelerator_error = getattr(torch, "AcceleratorError", None)
        if accelerator_error is not None and isinstance(e, accelerator_error):
            return True
    if isinstance(e, RuntimeError):
        text = str(e)
        return "out of memory" not in text and any(mark in text for mark in _FATAL_MARKS)
    return False
