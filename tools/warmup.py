"""Warm the speech engine ahead of a stream: load the model and every voice of a config file,
compile and capture every shape bucket, and fill the on-disk compile cache, so the daemon's own
start (and the first chat message) is fast.

    python tools/warmup.py --config config.yaml [--json summary.json]

Uses the config's ``engine`` section and ``voices`` exactly as the daemon does. Exits non-zero
with the config or engine error on one line when something is wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

T0 = time.perf_counter()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="config.yaml", type=Path)
    ap.add_argument("--json", type=Path, help="write a summary (timings, buckets) here")
    a = ap.parse_args(argv)

    from ishowtts import registry
    from ishowtts.app.daemon import voices_from
    from ishowtts.config import ConfigError, load_config

    def progress(line: str) -> None:
        print(f"[{time.perf_counter() - T0:6.1f}s] {line}", flush=True)

    try:
        config = load_config(a.config)
    except ConfigError as exc:
        print(f"config error:\n{exc}", file=sys.stderr)
        return 2
    spec = config.engine
    cls = registry.load(registry.ENGINES, spec.type)
    voices = voices_from(config)
    progress(f"engine {spec.type}, {len(voices)} voice(s) from {a.config}")
    engine = cls(spec.options if spec.options is not None else spec.raw)
    try:
        engine.load(voices, progress)
        t_load = time.perf_counter() - T0
        engine.warmup(progress)
        # What the daemon defers to the moments between lines (F5: compile, CUDA graphs), now.
        step = getattr(engine, "background_step", None)
        while step is not None and (delay := step()) is not None:
            time.sleep(delay)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"warm-up failed: {exc}", file=sys.stderr)
        return 1
    total = time.perf_counter() - T0
    summary: dict[str, Any] = {
        "ready_s": round(total, 2),
        "load_s": round(t_load, 2),
        "warmup_s": round(total - t_load, 2),
        **dict(engine.describe()),
    }
    progress(f"ready in {total:.1f} s: {json.dumps(summary, default=str)}")
    if a.json:
        a.json.write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
