"""The whole daemon measured: a realistic chat log replayed through connector → pipeline →
queue → F5 engine → player on ``player.device: none`` (paced like a sound card, no device),
for the F5 model and the DMOSpeech2 student in turn, in one process on one GPU.

    python tools/bench_daemon.py --random-weights               # both models, random weights
    python tools/bench_daemon.py --random-weights --models student --seconds 30

Per phase (quiet, busy) and kind it reports time to first audio (a chat event's arrival → its
first sample leaving the mixer into the output): p50/p95 over all events and over those that
found the daemon idle, and what became of them (spoken, dropped, expired...); and the gap
between lines while a backlog waits (silence from the end of one utterance's audio to the start
of the next, for utterances that had arrived before that silence began), p50/p95. Random
weights cost the trained models' compute; the audio is noise.

Each line of the chat log carries an id naming its phase (``quiet-3``, ``busy-17``): a gift
folded into an earlier one is measured from that one's arrival, in that one's phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ishowtts import logs
from ishowtts.app.daemon import Daemon
from ishowtts.audio.null_output import NullOutput
from ishowtts.config import load_config
from ishowtts.events import ChatEvent, Retraction, Utterance
from ishowtts.queue.ledger import Terminal

DANMAKU = [
    "主播好厉害啊", "哈哈哈哈哈", "666", "这波操作我给满分", "主播能不能唱一首晴天",
    "first time here, love the stream!", "gg", "笑死我了", "今天几点下播", "冲冲冲",
    "这个boss怎么打啊", "lol that was close", "主播今天唱得真好听，再来一首吧", "好",
    "前面的别刷屏了", "nice play!", "求BGM名字", "晚上好",
]  # fmt: skip
SUPER = ["主播加油，一直支持你！", "Thanks for the great stream, keep it up!",
         "生日快乐，祝主播越来越好"]  # fmt: skip
GIFTS = [("辣条", 1), ("小心心", 5), ("打call", 1), ("小电视飞船", 1)]


# After a super chat the quiet phase waits longer: F5 reads one ("viewerN的醒目留言：..." plus a
# sentence) in about 9 s, so the next event 6–9 s on found it still speaking (every quiet-phase
# gift did: none was ever measured idle).
QUIET_GAP_S = (6.0, 9.0)
QUIET_GAP_AFTER_SUPER_CHAT_S = (12.0, 15.0)


def chat_log(seconds: float, seed: int, quiet: float) -> list[dict[str, Any]]:
    """First ``quiet`` seconds: one event every 6–9 s (12–15 s after a super chat; danmaku,
    super chat, gift in turn), each finding the daemon idle. Then busy chat: danmaku at about
    1 a second with bursts of 8–15 in a second every ~15 s, a super chat every ~12 s, gifts in
    short runs of the same gift by one user (merged by the daemon while the first waits), an
    entry now and then: more than can be said, so the queue's priorities and TTLs decide, and
    lines wait in a backlog."""
    rnd = random.Random(seed)
    out: list[dict[str, Any]] = []

    def user() -> dict[str, Any]:
        uid = rnd.randrange(1, 400)
        return {"id": str(uid), "name": f"viewer{uid}"}

    t, i = 0.5, 0
    while t < quiet:
        kind = ("danmaku", "super_chat", "gift")[i % 3]
        ev: dict[str, Any] = {"t": t, "kind": kind, "user": user()}
        if kind == "danmaku":
            ev["text"] = rnd.choice(DANMAKU)
        elif kind == "super_chat":
            ev.update(text=rnd.choice(SUPER), amount=30)
        else:
            ev.update(gift="辣条", count=1, amount=1)
        out.append(ev)
        gap = QUIET_GAP_AFTER_SUPER_CHAT_S if kind == "super_chat" else QUIET_GAP_S
        t, i = t + rnd.uniform(*gap), i + 1
    busy = quiet
    seconds += quiet
    t = busy + 0.5
    while t < seconds:
        out.append({"t": t, "kind": "danmaku", "user": user(), "text": rnd.choice(DANMAKU)})
        t += rnd.expovariate(1.0)
    burst = busy + 5.0
    while burst < seconds:
        for _ in range(rnd.randint(8, 15)):
            out.append({"t": burst + rnd.random(), "kind": "danmaku", "user": user(),
                        "text": rnd.choice(DANMAKU)})  # fmt: skip
        burst += rnd.uniform(10, 20)
    t = busy + 3.0
    while t < seconds:
        out.append({"t": t, "kind": "super_chat", "user": user(), "text": rnd.choice(SUPER),
                    "amount": rnd.choice([30, 50, 100])})  # fmt: skip
        t += rnd.uniform(8, 16)
    t = busy + 2.0
    while t < seconds:
        u, (gift, count) = user(), rnd.choice(GIFTS)
        for k in range(rnd.randint(1, 4)):
            out.append({"t": t + 0.3 * k, "kind": "gift", "user": u, "gift": gift,
                        "count": count, "amount": count})  # fmt: skip
        t += rnd.uniform(4, 9)
    t = busy + 1.0
    while t < seconds:
        out.append({"t": t, "kind": "enter", "user": user()})
        t += rnd.uniform(3, 8)
    out.sort(key=lambda e: e["t"])
    for n, ev in enumerate(out):
        ev["id"] = f"{'quiet' if ev['t'] < quiet else 'busy'}-{n}"
    return out


def phase_of(event: ChatEvent) -> str:
    """The phase of the log line an event came from (its id's prefix)."""
    return event.raw_id.split("-", 1)[0] or "unknown"


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


class Probe:
    """What the daemon did, from its own hooks: arrivals (idle or not), first samples, the
    audible stretches of the output, terminal states."""

    def __init__(self, daemon: Daemon, sample_rate: int) -> None:
        self.daemon, self.sr = daemon, sample_rate
        self.idle_at_arrival: dict[str, bool] = {}
        self.started: list[tuple[Utterance, float]] = []
        self.audible: list[list[float]] = []  # [start, end] of non-silent output
        self.terminals: Counter[str] = Counter()
        # (phase, kind) → terminal state → count
        self.fates: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        handle, on_started = daemon.handle, daemon._on_started

        def wrapped_handle(item: ChatEvent | Retraction) -> None:
            if isinstance(item, ChatEvent):
                d = self.daemon
                busy = (len(d.scheduler) or d.worker.current is not None
                        or (d.player is not None and d.player.now_playing is not None))  # fmt: skip
                self.idle_at_arrival[item.id] = not busy
            handle(item)

        def wrapped_started(utt: Utterance, at: float) -> None:
            self.started.append((utt, at))
            on_started(utt, at)

        daemon.handle = wrapped_handle  # type: ignore[method-assign]
        daemon._on_started = wrapped_started  # type: ignore[method-assign]
        daemon.ledger.listeners.append(lambda ev, state, fields: self._terminal(ev, state))

    def _terminal(self, event: ChatEvent, state: Terminal | None) -> None:
        if state is None:  # the ledger also tells of openings
            return
        name = str(getattr(state, "value", state))
        self.terminals[name] += 1
        self.fates[(phase_of(event), str(event.kind))][name] += 1

    def tap(self, buf: np.ndarray, now: float) -> None:
        nz = np.flatnonzero(buf)
        if not len(nz):
            return
        start, end = now + nz[0] / self.sr, now + (nz[-1] + 1) / self.sr
        if self.audible and start - self.audible[-1][1] < 1.5 / self.sr:
            self.audible[-1][1] = end
        else:
            self.audible.append([start, end])

    def report(self) -> dict[str, Any]:
        ttfa: dict[tuple[str, str], list[float]] = defaultdict(list)
        idle: dict[tuple[str, str], list[float]] = defaultdict(list)
        gaps: list[float] = []
        for utt, at in self.started:
            key = (phase_of(utt.event), str(utt.event.kind))
            t = at - utt.event.received_mono
            ttfa[key].append(t)
            if self.idle_at_arrival.get(utt.event.id):
                idle[key].append(t)
            # The silence just before this start: none if the audio ran on into it (the
            # stretch holding `at` began earlier), else since the last stretch ended.
            prev = [seg for seg in self.audible if seg[0] < at - 0.5 / self.sr]
            if prev and utt.event.received_mono < prev[-1][1]:
                gaps.append(max(0.0, at - prev[-1][1]))
        phases: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        for (phase, kind), fates in sorted(self.fates.items()):
            v, w = ttfa[(phase, kind)], idle[(phase, kind)]
            phases[phase][kind] = {
                "n": len(v), "p50_ms": pct(v, 50) * 1e3, "p95_ms": pct(v, 95) * 1e3,
                "idle_n": len(w), "idle_p50_ms": pct(w, 50) * 1e3,
                "idle_p95_ms": pct(w, 95) * 1e3, "outcomes": dict(fates),
            }  # fmt: skip
        return {"ttfa": dict(phases), "gaps": {"n": len(gaps), "p50_ms": pct(gaps, 50) * 1e3,
                                               "p95_ms": pct(gaps, 95) * 1e3},
                "terminals": dict(self.terminals)}  # fmt: skip


def config_for(root: Path, model: str, args: argparse.Namespace) -> Path:
    engine: dict[str, Any] = {"type": "f5", "compile_cache": str(root / "inductor")}
    if model == "student":
        engine["model"] = "DMOSpeech2"
    if args.random_weights:
        engine["random_weights"] = True
    elif args.checkpoint:
        engine["checkpoint"] = args.checkpoint
    if args.max_frames:
        engine["max_frames"] = args.max_frames
    if args.arch:  # a smoke test on the CPU with a tiny model
        engine.update(arch=json.loads(args.arch), device="cpu", compile=False)
    voice: dict[str, Any] = {"language": "zh"}
    if args.tone:  # a smoke test of this harness: the tone engine, no model at all
        engine, voice = {"type": "tone"}, {}
    config = {
        "engine": engine,
        "voices": {"default": voice},
        "connectors": [{"type": "replay", "path": "chat.jsonl", "start_delay_s": 1.0}],
        "player": {"device": "none"},
        "api": {"enabled": False},
        "log": {"level": "warning", "format": "json"},
    }
    path = root / f"config-{model}.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


async def run_one(path: Path) -> dict[str, Any]:
    daemon = Daemon(load_config(path), until_idle=True, shutdown_grace_s=5.0)
    probe = Probe(daemon, 24000)  # hooks in before start: the player binds them when built
    t0 = time.monotonic()
    task = asyncio.create_task(daemon.run(lambda line: print(f"  {line}", flush=True)))
    await daemon.ready.wait()
    startup = time.monotonic() - t0
    player = daemon.player
    assert player is not None and isinstance(player.output, NullOutput)
    probe.sr = player.sample_rate
    player.output.tap = probe.tap  # the replay waits start_delay_s: nothing was played yet
    code = await task
    out = probe.report()
    engine = daemon.worker.engine
    out.update(exit_code=code, startup_s=startup, xruns=player.xruns,
               engine=dict(engine.describe()) if engine else {})  # fmt: skip
    return out


def print_table(results: dict[str, dict[str, Any]]) -> None:
    print("\n## whole daemon: chat event → first sample out (player.device: none)")
    print("| model | phase | kind | heard | TTFA p50 / p95 ms | found idle "
          "| idle TTFA p50 / p95 ms | outcomes |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for model, r in results.items():
        for phase in ("quiet", "busy"):
            for kind, k in r["ttfa"].get(phase, {}).items():
                fates = ", ".join(f"{n} {s}" for s, n in sorted(k["outcomes"].items()))
                print(f"| {model} | {phase} | {kind} | {k['n']} | {k['p50_ms']:.0f} / "
                      f"{k['p95_ms']:.0f} | {k['idle_n']} | {k['idle_p50_ms']:.1f} / "
                      f"{k['idle_p95_ms']:.1f} | {fates} |")  # fmt: skip
    for model, r in results.items():
        g = r["gaps"]
        print(f"{model}: gap between lines with a backlog p50 {g['p50_ms']:.1f} ms, p95 "
              f"{g['p95_ms']:.1f} ms (n {g['n']}); xruns {r['xruns']}; start-up "
              f"{r['startup_s']:.1f} s; outcomes {r['terminals']}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--random-weights", action="store_true")
    src.add_argument("--checkpoint", help="an F5 checkpoint (the student uses its published one)")
    ap.add_argument("--models", default="f5,student")
    ap.add_argument("--quiet", type=float, default=60.0, help="seconds of sparse chat first")
    ap.add_argument("--seconds", type=float, default=60.0, help="seconds of busy chat after")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-frames", type=int, help="engine max_frames (fewer buckets to warm)")
    ap.add_argument("--arch", help="JSON model.arch overrides: a tiny model for a CPU smoke run")
    ap.add_argument("--tone", action="store_true", help="the tone engine (tests this harness)")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args(argv)
    logs.configure("warning", "console")  # the daemon's per-message lines would drown the table
    root = Path(tempfile.mkdtemp(prefix="bench-daemon-"))
    log = chat_log(a.seconds, a.seed, a.quiet)
    (root / "chat.jsonl").write_text("\n".join(json.dumps(e, ensure_ascii=False) for e in log))
    counts = Counter(e["kind"] for e in log)
    print(f"# chat log: {len(log)} events, {a.quiet:g} s quiet then {a.seconds:g} s busy: "
          f"{dict(counts)}", flush=True)  # fmt: skip
    results: dict[str, dict[str, Any]] = {}
    for model in [m.strip() for m in a.models.split(",") if m.strip()]:
        print(f"# {model}", flush=True)
        results[model] = asyncio.run(run_one(config_for(root, model, a)))
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1, default=str))
    print_table(results)
    return 0 if all(r["exit_code"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
