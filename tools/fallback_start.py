"""Time from ``ishowtts run`` to the first audible demo line when F5's weights cannot be had.

Runs the shipped ``config.yaml`` (the demo replay) offline, with an empty Hugging Face cache,
so the eSpeak NG fallback speaks; reads the daemon's JSON log as it comes and reports, from the
moment the process was spawned: the fallback warning, ``ready`` and the first ``speaking`` line
(the first sample of the first line entering the output stream). Plays to ``--device`` (with a
PulseAudio null sink: ``--device pulse`` and ``PULSE_SINK=obs_tts``).

    .venv/bin/python tools/fallback_start.py [--device pulse] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
MARKS = ("api_listening", "engine_fallback", "ready", "speaking")


def one_run(device: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="ishowtts-fallback-") as tmp:
        config = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
        config["player"]["device"] = device
        config["api"]["port"] = 0
        config["log"]["format"] = "json"
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(HF_HUB_OFFLINE="1", HF_HOME=str(Path(tmp) / "hf"), STATE_DIRECTORY=tmp)
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "ishowtts", "run", "--until-idle", "-c", str(path)],
            cwd=tmp,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        seen: dict[str, float] = {}
        assert proc.stderr is not None
        for line in proc.stderr:
            try:
                event = json.loads(line).get("event")
            except (json.JSONDecodeError, AttributeError):
                continue
            if event in MARKS and event not in seen:
                seen[event] = time.monotonic() - started
        seen["exit"] = time.monotonic() - started
        if proc.wait() != 0:
            raise SystemExit(f"ishowtts exited {proc.returncode}")
        return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="player.device (default: the system's)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results = [one_run(args.device) for _ in range(args.runs)]
    print(f"{'mark':<16} " + " ".join(f"run {i + 1:>2}" for i in range(len(results))) + "  median")
    for mark in (*MARKS, "exit"):
        values = [r.get(mark, float("nan")) for r in results]
        cells = " ".join(f"{v:6.1f}" for v in values)
        print(f"{mark:<16} {cells}  {statistics.median(values):6.1f} s")


if __name__ == "__main__":
    main()
