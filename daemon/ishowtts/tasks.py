"""Ending an asyncio task from the code that owns it.

``task.cancel(); with suppress(CancelledError): await task`` is the usual way, and it fails in
two ways seen here. A cancellation of the *owner* that arrives during that wait raises the same
exception, which the ``suppress`` swallows, so the owner runs on as if never cancelled. And a
task can lose the cancellation it was sent: on Python < 3.12 ``asyncio.wait_for`` returns the
result of an operation that completed just as the cancellation came (a connect, under load),
and the task goes on. A connector stopped that way kept reconnecting to a server that asked it
to, forever, and ``stop()`` never returned.
"""

from __future__ import annotations

import asyncio
from typing import Any

# A task still running this long after a cancellation has most likely lost it: send another.
CANCEL_AGAIN_S = 1.0


async def cancel_and_wait(task: asyncio.Future[Any], again_s: float = CANCEL_AGAIN_S) -> None:
    """Cancel ``task`` (again every ``again_s`` while it runs) and wait until it has ended.
    The caller's own cancellation propagates; an exception the task ended with (other than
    being cancelled) is raised here."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=again_s)  # raises only if the caller is cancelled
    if not task.cancelled() and (error := task.exception()) is not None:
        raise error
