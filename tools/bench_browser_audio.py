#!/usr/bin/env python3
"""The voice in OBS browser sources, measured: a chat read by the daemon (eSpeak NG,
``player.device: none``) while headless chromium pages play ``/overlay?audio=1``.

    .venv/bin/python tools/bench_browser_audio.py --listeners 4 --seconds 600   # the issue's run
    .venv/bin/python tools/bench_browser_audio.py --listeners 2 --seconds 60    # a short one

Each listener is a chromium process of its own (Debian's, through Playwright; autoplay allowed,
not muted) playing into a PulseAudio null sink of its own, whose monitor ``parec`` records.
Every 100 ms of every line the daemon played is found in each recording by correlation
(tests/stream_align.py). Reported per listener: the latency from the daemon's first sample of a
line to that sample in the recording (p50/p95), the largest gap inside lines and between lines
played back to back (where sound runs on: a listener may stretch a silence to follow its card's
clock, which is counted apart), the page's underruns. For the daemon: its CPU time per second
with the listeners against a first phase without any (the same chat), per listener, and its
time to first audio in both phases (of the lines that found it idle). Needs PulseAudio (a
private server is started if none runs) and /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ishowtts import logs  # noqa: E402
from ishowtts.app.daemon import Daemon  # noqa: E402
from ishowtts.config import load_config  # noqa: E402
from ishowtts.control.api import ControlApi, resolve_token  # noqa: E402
from ishowtts.events import ChatEvent, Kind, User  # noqa: E402
from tests.audio_utils import ensure_pulseaudio, pactl  # noqa: E402
from tests.browser import launch  # noqa: E402
from tests.stream_align import DaemonOutput, TimedRecorder, follow, has_silence  # noqa: E402

SR = 24000
CONFIG = """\
engine: {type: espeak}
voices: {default: {}}
speech: {templates: {danmaku: "{text}"}}
filters: {rate: null}
player: {device: none}
airtime: {max_share: 1}  # lines waiting for airtime would read as TTFA
api: {port: 0, max_audio_listeners: 16}
log: {level: warning}
"""
PHRASES = [
    "主播好厉害啊", "这波操作我给满分", "first time here, love the stream", "今天几点下播",
    "nice play!", "主播今天唱得真好听，再来一首吧", "前面的别刷屏了", "晚上好", "求BGM名字",
    "lol that was close", "这个boss怎么打啊", "笑死我了",
]  # fmt: skip


class Stalls:
    """When the daemon's process stalled: the event loop woken late, and garbage collections
    (each with its time from the start), to line up with underruns and gaps."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.late: list[tuple[float, float]] = []  # (at, seconds late) over 40 ms
        self.gc: list[tuple[float, int, float]] = []  # (at, generation, seconds) over 20 ms
        self._gc_start = 0.0

    def collecting(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.monotonic()
        elif (took := time.monotonic() - self._gc_start) > 0.02:
            self.gc.append((self._gc_start - self.t0, info["generation"], took))

    async def watch(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            if (late := time.monotonic() - before - 0.01) > 0.04:
                self.late.append((before - self.t0, late))

    def summary(self) -> str:
        late = sorted(self.late, key=lambda x: -x[1])[:5]
        gcs = sorted(self.gc, key=lambda x: -x[2])[:5]
        worst = ", ".join(f"{s * 1e3:.0f} ms at {t:.0f} s" for t, s in late) or "none"
        slow = "".join(f", gen {g} {s * 1e3:.0f} ms at {t:.0f} s" for t, g, s in gcs)
        return f"loop woken late (worst 5): {worst}; collections over 20 ms: {len(self.gc)}{slow}"


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


class Ttfa:
    """Time to first audio of the lines that found the daemon idle (the others waited for the
    line before them): from the daemon's own ``started`` hook, wrapped before it starts."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.idle: set[str] = set()
        self.seen: list[float] = []
        started = daemon._on_started

        def wrapped(utt: Any, at: float) -> None:
            if utt.event.id in self.idle:
                self.seen.append(at - utt.event.received_mono)
            started(utt, at)

        daemon._on_started = wrapped  # type: ignore[method-assign]

    def arriving(self, event: ChatEvent) -> None:
        d = self.daemon
        if not (len(d.scheduler) or d.worker.current or (d.player and d.player.now_playing)):
            self.idle.add(event.id)


async def chat(
    daemon: Daemon, ttfa: Ttfa, seconds: float, rnd: random.Random, counter: Any
) -> None:
    """About one line every 4 s; every fourth time two at once (played back to back)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(2 if rnd.random() < 0.25 else 1):
            n = next(counter)
            text = f"{rnd.choice(PHRASES)} {n}"
            user = User(str(rnd.randrange(1, 300)), f"viewer{n}")
            event = ChatEvent("bench", str(n), Kind.DANMAKU, user, text=text)
            ttfa.arriving(event)
            daemon.handle(event)
        await asyncio.sleep(rnd.expovariate(1 / 4.0))


async def idle(daemon: Daemon, bound: float = 60.0) -> None:
    """Until all that was queued is said (no event says so: its parts are polled)."""
    end = time.monotonic() + bound
    while time.monotonic() < end and not (  # noqa: ASYNC110
        len(daemon.scheduler) == 0
        and daemon.worker.current is None
        and daemon.player is not None
        and daemon.player.now_playing is None
    ):
        await asyncio.sleep(0.05)


async def phase(
    daemon: Daemon, ttfa: Ttfa, seconds: float, rnd: random.Random, counter: Any
) -> dict[str, Any]:
    """The chat for ``seconds``, then until it was all said: CPU per second and TTFA."""
    before = len(ttfa.seen)
    cpu, wall = time.process_time(), time.monotonic()
    await chat(daemon, ttfa, seconds, rnd, counter)
    await idle(daemon)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    return {"cpu_per_s": cpu / wall, "wall_s": wall, "ttfa": ttfa.seen[before:]}


def analyse(out: DaemonOutput, heard: np.ndarray, t0: float) -> dict[str, Any]:
    daemon = out.samples()
    found = follow(out, heard, t0)
    latency = [f.delay for f in found]
    inside = [f.worst_step(daemon, sure=0.9) for f in found]
    between = []
    for a, b in itertools.pairwise(found):
        if b.line.start - a.line.end <= 480:  # played back to back
            last, first = a.windows[-1], b.windows[0]
            sure = min(last.corr, first.corr) >= 0.9
            if sure and not has_silence(daemon[last.index : first.index + 1], 480):
                between.append(abs(first.delay - last.delay))
    weak = sum(1 for f in found for w in f.windows if w.corr < 0.8)
    return {
        "lines": len(found),
        "of": sum(1 for line in out.lines if line.end >= 0),
        "latency": latency,
        "gap_inside": max(inside, default=0.0),
        "gap_between": max(between, default=0.0),
        "back_to_back": len(between),
        "weak_windows": weak,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="bench-browser-audio-"))
    (folder / "config.yaml").write_text(CONFIG, encoding="utf-8")
    config = load_config(folder / "config.yaml")
    daemon = Daemon(config, shutdown_grace_s=2.0)
    ttfa = Ttfa(daemon)
    api = ControlApi(daemon, config.api, resolve_token(config.api, {}))
    await api.start()
    task = asyncio.create_task(daemon.run())
    rnd, counter = random.Random(args.seed), itertools.count(1)
    result: dict[str, Any] = {}
    stalls = Stalls()
    gc.callbacks.append(stalls.collecting)
    watcher = asyncio.create_task(stalls.watch())
    try:
        await asyncio.wait_for(daemon.ready.wait(), 60)
        player = daemon.player
        assert player is not None
        print(f"# phase 1: {args.baseline:g} s of chat, no listener", flush=True)
        result["alone"] = await phase(daemon, ttfa, args.baseline, rnd, counter)
        async with contextlib.AsyncExitStack() as stack:
            pages = []
            for i in range(args.listeners):
                name = f"listener{i}"
                module = pactl("load-module", "module-null-sink", f"sink_name={name}",
                               f"rate={SR}", "channels=1").strip()  # fmt: skip
                stack.callback(pactl, "unload-module", module, check=False)
                browser = await stack.enter_async_context(launch(sink=name))
                page = await browser.new_page()
                await page.goto(f"http://127.0.0.1:{api.port}/overlay?audio=1&buffer={args.buffer}")
                pages.append((name, page))
            for _, page in pages:
                await page.wait_for_function(
                    "n => window.ishowttsVoice && window.ishowttsVoice.played > n", arg=2 * SR
                )
            out = DaemonOutput(player.sample_rate)
            player.taps.append(out.tap)
            recorders = [
                await asyncio.to_thread(TimedRecorder(f"{name}.monitor", SR).start)
                for name, _ in pages
            ]
            before = [await page.evaluate("({...window.ishowttsVoice})") for _, page in pages]
            print(f"# phase 2: {args.seconds:g} s of chat, {args.listeners} listener(s), from "
                  f"{time.monotonic() - stalls.t0:.0f} s", flush=True)  # fmt: skip
            result["listening"] = await phase(daemon, ttfa, args.seconds, rnd, counter)
            await asyncio.sleep(1.0)  # the pages' buffers play out
            player.taps.remove(out.tap)
            after = [await page.evaluate("({...window.ishowttsVoice})") for _, page in pages]
            heard = [await asyncio.to_thread(rec.stop) for rec in recorders]
            result["fanout"] = daemon.audio_fanout.status()
            result["xruns"] = player.xruns
        listeners = []
        for (name, _), rec, audio, b, a in zip(pages, recorders, heard, before, after, strict=True):
            row = await asyncio.to_thread(analyse, out, audio, rec.t0)
            counts = ("underruns", "skipped", "held", "trimmed", "connects")
            row.update({k: a.get(k, 0) - b.get(k, 0) for k in counts})
            row.update(name=name, player=a.get("player"))
            listeners.append(row)
        result["listeners"] = listeners
    finally:
        watcher.cancel()
        gc.callbacks.remove(stalls.collecting)
        result["stalls"] = stalls.summary()
        daemon.request_stop()
        await asyncio.wait_for(task, 30)
        await api.stop()
    return result


def report(r: dict[str, Any], args: argparse.Namespace) -> None:
    ms = 1000.0
    print(f"\n## browser sources: {args.listeners} listener(s), {args.seconds:g} s of chat, "
          f"buffer {args.buffer} ms")  # fmt: skip
    print("| listener | player | lines found | latency p50 / p95 ms | max gap inside / between "
          "lines ms (back-to-back pairs) | underruns | skipped | silence held / trimmed ms "
          "| reconnects | windows corr < 0.8 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in r["listeners"]:
        lat = row["latency"]
        print(f"| {row['name']} | {row['player']} | {row['lines']}/{row['of']} | "
              f"{pct(lat, 50) * ms:.0f} / {pct(lat, 95) * ms:.0f} | "
              f"{row['gap_inside'] * ms:.1f} / {row['gap_between'] * ms:.1f} "
              f"({row['back_to_back']}) | {row['underruns']} | {row['skipped']} | "
              f"{row['held'] / SR * ms:.0f} / {row['trimmed'] / SR * ms:.0f} | "
              f"{row['connects']} | {row['weak_windows']} |")  # fmt: skip
    alone, listening = r["alone"], r["listening"]
    per = (listening["cpu_per_s"] - alone["cpu_per_s"]) / max(1, args.listeners)
    print(f"daemon CPU: {alone['cpu_per_s'] * 100:.1f} % of a core without listeners, "
          f"{listening['cpu_per_s'] * 100:.1f} % with {args.listeners}: "
          f"{per * 100:+.2f} % per listener")  # fmt: skip
    for key in ("alone", "listening"):
        t = r[key]["ttfa"]
        print(f"daemon TTFA, lines that found it idle ({key}): p50 {pct(t, 50) * ms:.1f} ms, "
              f"p95 {pct(t, 95) * ms:.1f} ms (n {len(t)})")  # fmt: skip
    f = r["fanout"]
    print(f"fan-out: dropped {f['dropped']}, blocks lost to a stalled loop {f['lost_blocks']}; "
          f"daemon xruns {r['xruns']}")  # fmt: skip
    print(f"stalls: {r['stalls']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listeners", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=600.0, help="chat with the listeners")
    ap.add_argument("--baseline", type=float, default=60.0, help="chat before, without any")
    ap.add_argument("--buffer", type=int, default=80, help="the pages' jitter buffer, ms")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    logs.configure("warning", "console")
    pulse = ensure_pulseaudio()
    try:
        result = asyncio.run(run(args))
    finally:
        pulse.stop()
    report(result, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
