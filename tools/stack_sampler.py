#!/usr/bin/env python3
"""Where a Python process spends its start: every thread's stack sampled every few ms, written
as JSON lines as it runs (so a SIGTERM or a crash loses at most a second), then summarised.

    python tools/stack_sampler.py record OUT.jsonl -- -m ishowtts run -c config.yaml
    python tools/stack_sampler.py summary OUT.jsonl [--window 0.5] [--until 15]

``record`` runs the module or script after ``--`` in this process, as ``python`` would, with a
sampling thread beside it. A sample is taken when that thread gets the GIL, so a thread that
holds it in one long C call (a ``dlopen``, say) shows as a gap in the samples, not as its own.
Each sample names, per thread, the module being imported (outermost and innermost) and the
innermost frames. ``summary`` prints, per thread and time window, what it was doing most.
Diagnosis only (``bench_coldstart.py --profile-dir``): sampling slows the process a little.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import runpy
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

INTERVAL_S = 0.005
DEPTH = 12  # innermost frames kept per thread


def _frames(frame: Any) -> tuple[list[str], list[str]]:
    """(the modules being imported, outermost first; the innermost frames, innermost first)."""
    importing: list[str] = []
    inner: list[str] = []
    while frame is not None:
        code = frame.f_code
        if code.co_name == "_find_and_load":
            name = frame.f_locals.get("name")
            if isinstance(name, str):
                importing.append(name)
        if len(inner) < DEPTH:
            inner.append(f"{Path(code.co_filename).name}:{code.co_name}:{frame.f_lineno}")
        frame = frame.f_back
    importing.reverse()
    return importing, inner


def _sample(out: TextIO, t0: float, stop: threading.Event) -> None:
    me = threading.get_ident()
    last_flush = time.monotonic()
    while not stop.wait(INTERVAL_S):
        names = {t.ident: t.name for t in threading.enumerate()}
        t = round(time.monotonic() - t0, 4)
        for ident, frame in sys._current_frames().items():
            if ident == me:
                continue
            importing, inner = _frames(frame)
            out.write(json.dumps({"t": t, "thread": names.get(ident, str(ident)),
                                  "imp": importing, "stack": inner}) + "\n")  # fmt: skip
        if time.monotonic() - last_flush > 1.0:
            out.flush()
            last_flush = time.monotonic()


def record(path: Path, argv: list[str]) -> None:
    t0 = time.monotonic()
    out = path.open("w", encoding="utf-8")
    stop = threading.Event()
    threading.Thread(target=_sample, args=(out, t0, stop), name="stack-sampler",
                     daemon=True).start()  # fmt: skip
    try:
        if argv[:1] == ["-m"]:
            sys.argv = [argv[1], *argv[2:]]
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = argv
            runpy.run_path(argv[0], run_name="__main__")
    finally:
        stop.set()
        out.flush()


# Innermost frames of a thread that waits (for work, a lock, the event loop's select).
WAITING = ("threading.py:wait", "selectors.py:select", "queue.py:get", "threads.py:_serve",
           "null_output.py:_run")  # fmt: skip
LIBRARY = ("threading.py", "events.py", "base_events.py", "thread.py", "runners.py")


def _doing(sample: dict[str, Any]) -> str:
    """One label for a sample: the import under way (outermost > innermost), "waiting", or
    the innermost frame outside asyncio's and threading's own."""
    imp = sample["imp"]
    if imp:
        return f"import {imp[0]}" + (f" > {imp[-1]}" if len(imp) > 1 else "")
    stack = sample["stack"]
    if stack and stack[0].startswith(WAITING):
        return "waiting"
    ours = [f for f in stack if not f.startswith(LIBRARY)]
    return (ours or stack or ["?"])[0]


def summary(path: Path, window: float, until: float, top: int) -> None:
    by: dict[str, dict[int, collections.Counter[str]]] = collections.defaultdict(
        lambda: collections.defaultdict(collections.Counter)
    )
    stamps: set[float] = set()
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                s = json.loads(line)
            except ValueError:
                continue  # the last line of a killed process
            if s["t"] > until:
                continue
            stamps.add(s["t"])
            by[s["thread"]][int(s["t"] // window)][_doing(s)] += 1
    times = sorted(stamps)
    gaps = [(b - a, a) for a, b in itertools.pairwise(times) if b - a > 0.1]
    print(
        f"# {path.name}: {len(times)} samples to {until:g} s; gaps over 100 ms (the GIL held "
        f"in C): " + ", ".join(f"{g * 1e3:.0f} ms at {a:.2f} s" for g, a in sorted(gaps)[-8:])
    )
    for thread, windows in sorted(by.items(), key=lambda kv: min(kv[1])):
        print(f"## thread {thread}")
        for w in sorted(windows):
            counts = windows[w]
            n = sum(counts.values())
            if counts["waiting"] == n:
                continue
            parts = ", ".join(f"{k} {100 * c // n}%" for k, c in counts.most_common(top))
            print(f"  {w * window:6.2f}s  {parts}")


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "record":
        split = sys.argv.index("--")
        record(Path(sys.argv[2]), sys.argv[split + 1 :])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["summary"])
    ap.add_argument("path", type=Path)
    ap.add_argument("--window", type=float, default=0.5)
    ap.add_argument("--until", type=float, default=20.0)
    ap.add_argument("--top", type=int, default=3)
    a = ap.parse_args()
    summary(a.path, a.window, a.until, a.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
