"""Cold start on the GPU: from a process's start to the first F5 audio and to every bucket warm,
with an empty and with a kept compile cache, for F5 and the DMOSpeech2 student; and the daemon
itself stopped with SIGTERM and started again (docs/coldstart.md).

    python tools/bench_coldstart.py --random-weights                 # engines, then the daemon
    python tools/bench_coldstart.py --random-weights --models f5 --no-daemon --json out.json
    python tools/bench_coldstart.py --random-weights --models '' --restarts 3 --quick \
        --variant before=/tmp/before/daemon --variant after=daemon  # the daemon, two trees

Engine rows: each run is a fresh process, so imports and torch's in-memory caches start cold;
"fresh" gets a new, empty compile cache (inductor and Triton), "kept" the one the fresh run
left. From the process's start: imports done, model loaded, ready (the eager path warm), the
first line's audio (a 15-character danmaku asked for at ready), lines asked for every 2 s while
the rest warms between them (their time to first audio), the compiled functions in place, every
bucket's graphs captured, then a warm line.

Daemon rows: ``ishowtts run`` on random-weight F5 with the eSpeak NG fallback and ``player.device:
none``. The first start (empty cache) is timed and fills the cache; SIGTERM; then ``--restarts``
starts with the cache kept, each timed: ready (the fallback speaks), F5 in (swapped in), first
F5 audio (a ``POST /say`` sent when F5 is in, until its first sample leaves the mixer: the
``speaking`` line), compiled, every bucket warm. ``--variant old=PATH --variant new=daemon``
times two trees of the daemon in one run, their restarts interleaved (the host's import time
drifts by seconds between runs and machines: compare within a run). ``--profile-dir`` adds one
kept-cache start per variant under tools/stack_sampler.py. Random weights cost the trained
models' compute; the audio is noise.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

T0 = time.perf_counter()
DANMAKU = "主播今天唱得真好听，再来一首吧"  # 15 characters
LINE_EVERY_S = 2.0
MODELS = {"f5": {}, "student": {"model": "DMOSpeech2"}}


def child(a: argparse.Namespace) -> dict[str, Any]:
    """One cold start in this process; times from the process's start."""
    import torch

    from ishowtts.engines.base import Voice
    from ishowtts.engines.f5.engine import F5Engine

    def at() -> float:
        return round(time.perf_counter() - T0 + a.spawn_s, 3)

    out: dict[str, Any] = {"model": a.model, "cache": a.cache_state, "imports_s": at()}
    engine = F5Engine({**MODELS[a.model], "random_weights": True, "compile_cache": a.cache_dir,
                       "language": "zh", "arch": json.loads(a.arch)})  # fmt: skip
    log = lambda line: print(f"  [{at():6.1f}s] {line}", file=sys.stderr, flush=True)  # noqa: E731
    engine.load({"v": Voice("v")}, log)
    out["loaded_s"] = at()
    engine.warmup(log)
    out["ready_s"] = at()

    def first_audio() -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        chunks = engine.synthesize(DANMAKU, "v")
        next(chunks)
        took = time.perf_counter() - t0
        for _ in chunks:
            pass
        return round(took * 1e3, 1)

    out["first_line_ttfa_ms"] = first_audio()
    out["first_audio_s"] = round(out["ready_s"] + out["first_line_ttfa_ms"] / 1e3, 3)
    during: list[float] = []
    next_line = time.perf_counter() + LINE_EVERY_S
    assert engine.fast is not None
    while (delay := engine.background_step()) is not None:
        if "compiled_s" not in out and engine.fast.mark_dynamic:
            out["compiled_s"] = at()
        if time.perf_counter() >= next_line:  # a line comes: it waited for one piece at most
            during.append(first_audio())
            next_line += LINE_EVERY_S
        time.sleep(delay)
    out["warm_s"] = at()
    out["buckets"] = len(engine.runners)
    out["lines_while_warming_ttfa_ms"] = during
    out["warm_ttfa_ms"] = statistics.median(first_audio() for _ in range(5))
    engine.close()
    return out


def run_child(model: str, cache: Path, state: str, arch: str) -> dict[str, Any]:
    spawned = time.perf_counter()
    cmd = [sys.executable, __file__, "--child", "--model", model, "--cache-dir", str(cache),
           "--cache-state", state, "--spawned-at", repr(time.time()), "--arch", arch]  # fmt: skip
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode:
        return {"model": model, "cache": state, "error": f"exit {proc.returncode}"}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = round(time.perf_counter() - spawned, 2)
    return result


# ---- the daemon, stopped and started again --------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    """``ishowtts run`` as a process, its JSON log lines timed as they come."""

    def __init__(self, config: Path, port: int, env: dict[str, str], profile: Path | None) -> None:
        self.port = port
        cmd = [sys.executable, "-m", "ishowtts", "run", "-c", str(config)]
        if profile is not None:  # under the stack sampler (diagnosis: a little slower)
            sampler = str(Path(__file__).parent / "stack_sampler.py")
            cmd = [sys.executable, sampler, "record", str(profile), "--", *cmd[1:]]
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[tuple[float, dict[str, Any]]] = []
        self.other: list[str] = []  # not JSON: a traceback, say
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            if raw.startswith("{"):
                self.lines.append((time.monotonic() - self.t0, json.loads(raw)))
            else:
                self.other = [*self.other[-30:], raw.rstrip()]

    def when(self, test: Any, timeout: float) -> tuple[float, dict[str, Any]] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            for t, line in list(self.lines):
                if test(line):
                    return t, line
            time.sleep(0.02)
        return None

    def say(self, text: str) -> str:
        body = json.dumps({"text": text}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/say", body, method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return str(json.loads(resp.read())["id"])

    def stop(self) -> tuple[int, float]:
        t = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        return code, round(time.monotonic() - t, 2)


def one_start(config: Path, port: int, env: dict[str, str], wait_s: float,
              profile: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """One start, timed; ``wait_s``: how long to wait for the compile and then every bucket
    (0: stop once the first F5 line is heard)."""
    d = Daemon(config, port, env, profile)
    out: dict[str, Any] = {}
    for key, event in (("ready_s", "ready"), ("f5_in_s", "engine_ready")):
        got = d.when(lambda r, e=event: r.get("event") == e, 180)
        if got is None:
            out["error"] = f"no {event} line; exit {d.proc.poll()}"
            print("\n".join(d.other), file=sys.stderr)
            if d.proc.poll() is None:
                d.stop()
            return out
        out[key] = round(got[0], 2)
    ready = next(r for _, r in d.lines if r.get("event") == "ready")
    out["speaking_at_ready"] = ready.get("speaking")
    uid = d.say(DANMAKU)
    got = d.when(lambda r: r.get("event") == "speaking" and r.get("id") == uid, 60)
    out["first_f5_audio_s"] = round(got[0], 2) if got else None
    out["first_f5_ttfa_ms"] = got[1].get("ttfa_ms") if got else None
    for key, event in (("compiled_s", "f5_compiled"), ("warm_s", "f5_warm")):
        got = d.when(lambda r, e=event: r.get("event") == e, wait_s) if wait_s else None
        out[key] = round(got[0], 2) if got else None
    out["exit_code"], out["stop_s"] = d.stop()
    return out


def daemon_restarts(root: Path, a: argparse.Namespace) -> dict[str, Any]:
    """Per variant (a tree of the daemon, by its PYTHONPATH): a start with an empty compile
    cache, which fills it, then ``a.restarts`` starts with that cache kept, the variants'
    restarts interleaved so that the host's drift hits them alike."""
    port = free_port()
    variants = dict(v.split("=", 1) for v in a.variant) or {"tree": ""}
    envs, configs = {}, {}
    for name, path in variants.items():
        env = dict(os.environ)
        if path:
            env["PYTHONPATH"] = os.pathsep.join([str(Path(path).resolve()),
                                                 env.get("PYTHONPATH", "")])  # fmt: skip
        engine = {"type": "f5", "random_weights": True, "fallback": "espeak",
                  "compile_cache": str(root / f"cache-{name}"), "language": "zh"}  # fmt: skip
        settings = {"engine": engine, "voices": {"default": {}}, "connectors": [],
                    "player": {"device": "none"}, "api": {"host": "127.0.0.1", "port": port},
                    "log": {"format": "json"}, **json.loads(a.settings)}  # fmt: skip
        configs[name] = root / f"config-{name}.yaml"
        configs[name].write_text(json.dumps(settings))  # JSON is YAML
        envs[name] = env

    out: dict[str, Any] = {}
    for name in variants:
        row = one_start(configs[name], port, envs[name], a.warm_timeout)
        print(json.dumps({name: {"fresh_cache": row}}), flush=True)
        out[name] = {"fresh_cache": row, "kept_cache": []}
    for i in range(a.restarts):  # SIGTERM, then started again
        for name in variants:
            wait = a.warm_timeout if i == 0 and not a.quick else 0.0
            row = one_start(configs[name], port, envs[name], wait)
            print(json.dumps({name: {"kept_cache": row}}), flush=True)
            out[name]["kept_cache"].append(row)
    for name in variants if a.profile_dir else ():  # one more each, sampled (not in the table)
        path = Path(a.profile_dir) / f"{name}-kept.jsonl"
        out[name]["profiled"] = one_start(configs[name], port, envs[name], 0.0, path)
        print(json.dumps({name: {"profiled": out[name]["profiled"]}}), flush=True)
    return out


def print_tables(r: dict[str, Any]) -> None:
    print("\n## Engine cold start (s from the process's start; lines: time to first audio)")
    print("| model | cache | imports | loaded | ready | first audio | compiled | all buckets "
          "| lines while warming, ms (max) | warm line ms |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in r.get("engines", []):
        if "error" in row:
            print(f"| {row['model']} | {row['cache']} | {row['error']} |")
            continue
        during = row["lines_while_warming_ttfa_ms"]
        d = f"{statistics.median(during):.0f} ({max(during):.0f})" if during else "-"
        print(f"| {row['model']} | {row['cache']} | {row['imports_s']:.1f} | {row['loaded_s']:.1f} "
              f"| {row['ready_s']:.1f} | **{row['first_audio_s']:.1f}** "
              f"| {row.get('compiled_s', float('nan')):.1f} | {row['warm_s']:.1f} "
              f"({row['buckets']}) | {d} | {row['warm_ttfa_ms']:.0f} |")  # fmt: skip
    for variant, starts in r.get("daemon", {}).items():
        print(f"\n## Daemon ({variant}): start, SIGTERM, start again (s from `ishowtts run`)")
        print("| start | ready (speaking) | F5 in | first F5 audio (TTFA ms) | compiled "
              "| all buckets | exit |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        rows = [("fresh_cache", starts["fresh_cache"])]
        rows += [(f"kept_cache {i + 1}", row) for i, row in enumerate(starts["kept_cache"])]
        for key, row in rows:
            if "error" in row:
                print(f"| {key} | {row['error']} |")
                continue
            print(f"| {key} | {row['ready_s']} ({row['speaking_at_ready']}) | {row['f5_in_s']} "
                  f"| **{row['first_f5_audio_s']}** ({row['first_f5_ttfa_ms']}) "
                  f"| {row['compiled_s']} | {row['warm_s']} "
                  f"| {row['exit_code']} in {row['stop_s']} s |")  # fmt: skip
        kept = [row for row in starts["kept_cache"] if row.get("first_f5_audio_s") is not None]
        if kept:
            med = {k: statistics.median(row[k] for row in kept)
                   for k in ("ready_s", "f5_in_s", "first_f5_audio_s")}  # fmt: skip
            print(f"| kept, median of {len(kept)} | {med['ready_s']:.2f} | {med['f5_in_s']:.2f} "
                  f"| **{med['first_f5_audio_s']:.2f}** | | | |")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--random-weights", action="store_true", help="(the only source yet)")
    ap.add_argument("--models", default="f5,student")
    ap.add_argument("--no-daemon", action="store_true")
    ap.add_argument("--warm-timeout", type=float, default=240.0)
    ap.add_argument("--restarts", type=int, default=1, help="daemon starts with the cache kept")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=PATH",
                    help="a daemon tree to time (its folder goes first on PYTHONPATH); "
                    "repeat to compare trees in one run")  # fmt: skip
    ap.add_argument(
        "--quick",
        action="store_true",
        help="restarts stop at the first F5 line (no wait for every bucket)",
    )
    ap.add_argument("--profile-dir", help="one more kept-cache start per variant, sampled by "
                    "tools/stack_sampler.py into this folder")  # fmt: skip
    ap.add_argument(
        "--settings",
        default="{}",
        help='more config sections for the daemon, as JSON: {"languages": {"detect": false}} '
        "where Lingua is not installed",
    )
    ap.add_argument("--json")
    ap.add_argument("--arch", default="{}", help="model.arch overrides as JSON (tests: tiny)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="f5", choices=sorted(MODELS), help=argparse.SUPPRESS)
    ap.add_argument("--cache-dir", help=argparse.SUPPRESS)
    ap.add_argument("--cache-state", default="fresh", help=argparse.SUPPRESS)
    ap.add_argument("--spawned-at", type=float, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        a.spawn_s = time.time() - a.spawned_at - (time.perf_counter() - T0) if a.spawned_at else 0
        print(json.dumps(child(a)), flush=True)
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result: dict[str, Any] = {"engines": []}
    with tempfile.TemporaryDirectory(prefix="coldstart-") as tmp:
        for model in [m for m in a.models.split(",") if m]:  # '': the daemon alone
            cache = Path(tmp) / f"cache-{model}"
            for state in ("fresh", "kept"):
                row = run_child(model, cache, state, a.arch)
                print(json.dumps(row), flush=True)
                result["engines"].append(row)
        if not a.no_daemon:
            result["daemon"] = daemon_restarts(Path(tmp), a)
            print(json.dumps(result["daemon"]), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))
    print_tables(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
