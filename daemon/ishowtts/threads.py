"""An executor of one daemon thread, for calls that may hang for good inside C code (an engine
on a wedged GPU, a PortAudio stream on a wedged sound server).

``ThreadPoolExecutor`` (asyncio's default executor too) joins its threads at interpreter exit,
so one call stuck in a driver keeps the process alive past systemd's stop timeout. This one's
thread is a daemon thread: whoever waited on a call with a deadline can abandon it, and exit
does not wait for it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any


class DaemonExecutor(Executor):
    """One daemon thread running the calls submitted to it, in order."""

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self._closed:
            raise RuntimeError(f"the {self._thread.name} thread is shut down")
        future: Future[Any] = Future()
        self._calls.put((future, fn, args, kwargs))
        return future

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            future, fn, args, kwargs = call
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # handed to the awaiting side, as an executor does
                future.set_exception(exc)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no more calls; the thread ends after the calls already queued (a hung one never
        returns: then do not wait)."""
        self._closed = True
        self._calls.put(None)
        if wait:
            self._thread.join()
