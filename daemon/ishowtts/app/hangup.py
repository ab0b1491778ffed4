"""A SIGHUP that comes before the daemon's event loop handles it (during imports and the config
load: ~0.5 s with the tone engine, seconds with F5, which imports torch) must not kill the
process, as the default action does: it is remembered, and the daemon reloads once ready."""

from __future__ import annotations

import signal
from types import FrameType

_asked = False


def install() -> None:
    """From now on a SIGHUP is remembered (call it first thing, in the main thread)."""
    signal.signal(signal.SIGHUP, _remember)


def _remember(signum: int, frame: FrameType | None) -> None:
    global _asked
    _asked = True


def take() -> bool:
    """Whether a SIGHUP came since ``install`` (or the last ``take``)."""
    global _asked
    asked, _asked = _asked, False
    return asked
