"""A busy room, heard: a chat log with quiet, busy (peak), lull and storm phases replayed through
the whole daemon (replay connector → pipeline → queue → engine → player on ``player.device:
none``, paced like a sound card) at the speaking rate of real speech, and what a streamer hears
of it, per phase and kind.

    python tools/bench_room.py                        # tone engine, 0.22 s a character, CPU
    python tools/bench_room.py --engine f5 --random-weights      # on a GPU
    python tools/bench_room.py --make-log tools/rooms/peak.jsonl --seed 1

It prints, per phase: paid acknowledgements (gift, super chat, guard) and welcomes (follow,
enter): latency from arrival to the start of the line that covers the event (its own, or the
combined line it was merged into), p50/p95, and how many were never acknowledged; plain chat:
danmaku read (lines), distinct texts heard (read, or covered by a storm line) against distinct
texts sent, age at speaking (start of the line − arrival of the newest event it covers) p50/p95;
the share of the phase the bot was audible; for the quiet phase the time to first audio of
events that found the daemon idle; and the drain time after each burst (end of the last line
covering one of its events − its end).

The room logs are the project's own (``tools/rooms/``, made by ``--make-log``): a mid-size
Bilibili room's peak of 120 danmaku, 30 small gifts and 2 super chats a minute, a guard, enters
and follows, after a quiet start; then a lull, then a storm of the same few memes.
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ishowtts import logs
from ishowtts.app.daemon import Daemon
from ishowtts.audio.null_output import NullOutput
from ishowtts.config import load_config
from ishowtts.events import ChatEvent, Retraction, Utterance
from ishowtts.pipeline.dedupe import canonical
from ishowtts.queue.ledger import Terminal

ROOMS = Path(__file__).resolve().parent / "rooms"
DEFAULT_LOG = ROOMS / "peak.jsonl"
PAID = ("super_chat", "gift", "guard")
WELCOMES = ("follow", "enter", "share", "like")

# (phase, seconds): the quiet start shows an idle daemon answering at once; the busy phase is
# the peak; the lull lets the backlog drain; the storm is a few memes from everyone.
PHASES = (("quiet", 40.0), ("busy", 120.0), ("lull", 30.0), ("storm", 40.0))

# -- the room ---------------------------------------------------------------------------------

_NICK_HEAD = ["小", "大", "阿", "老", "夜", "甜", "橘", "白", "星", "云", "南", "北", "木", "一只"]
_NICK_BODY = ["鱼", "猫", "喵", "兔", "熊", "风", "月", "狐狸", "柠檬", "布丁", "咸鱼", "饺子",
              "西瓜", "奶茶", "面包", "可乐", "芒果", "团子", "丸子", "桃子"]  # fmt: skip
_NICK_TAIL = [
    "",
    "",
    "酱",
    "君",
    "同学",
    "_",
    "233",
    "0721",
    "Official",
    "不吃香菜",
    "今天也要加油",
]
_EN_NICKS = ["lucky_star", "NightOwl", "kiwi", "pixel_cat", "mochi", "Teddy", "ricecake99"]

# Memes: the same few texts in many spellings (dedupe folds them to one key).
MEMES = {
    "666": ["666", "6666", "666666", "６６６", "666!!"],
    "哈哈哈": ["哈哈哈", "哈哈哈哈哈", "哈哈哈哈哈哈哈哈", "哈哈哈！"],
    "awsl": ["awsl", "AWSL", "awsl!!", "阿伟死了"],
    "草": ["草", "草草草", "草！"],
    "？？？": ["？？？", "???", "？？"],
    "好听": ["好听", "好听！", "好听好听"],
    "主播好帅": ["主播好帅", "主播好帅！！"],
    "来了来了": ["来了来了", "来了来了来了"],
}
_SUBJECTS = ["主播", "这个boss", "刚才那波", "这首歌", "弹幕", "今天的直播", "这把", "队友", "BGM"]
_COMMENTS = ["太强了", "有点难啊", "我给满分", "笑死我了", "好好听", "是真的离谱", "稳了",
             "怎么回事", "也太可爱了", "绝了", "看哭了", "是认真的吗", "打得真好",
             "可以的"]  # fmt: skip
_QUESTIONS = ["今天几点下播", "这是什么游戏", "求BGM名字", "主播用的什么耳机", "明天还播吗",
              "能不能唱一首晴天", "这关怎么过", "主播吃饭了吗", "下一把玩什么", "什么时候抽奖",
              "主播多高", "这个皮肤多少钱"]  # fmt: skip
_ENGLISH = ["first time here, love the stream!", "gg", "nice play", "lol that was close",
            "hello from Canada", "what game is this?", "that was insane", "W streamer"]  # fmt: skip
_GREETINGS = ["晚上好", "主播晚上好", "来了", "打卡", "下班来看直播了", "刚来，错过了什么"]

# (name, price in CNY of one) of Bilibili's small gifts, the peak's 30 a minute.
SMALL_GIFTS = [("小心心", 0.1), ("辣条", 0.1), ("打call", 0.5), ("牛哇牛哇", 0.1),
               ("这个好诶", 1.0), ("粉丝团灯牌", 1.0), ("人气票", 1.0)]  # fmt: skip
SUPER_TEXTS = ["主播加油，一直支持你！", "生日快乐，祝主播越来越好",
               "今天的歌太好听了，谢谢主播", "Thanks for the great stream, keep it up!",
               "第一次打醒目留言，主播看看我"]  # fmt: skip


class Room:
    """Viewers and what they say, from one seeded random source."""

    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        self.names: dict[int, str] = {}

    def user(self, pool: int = 2000) -> dict[str, Any]:
        uid = self.rnd.randrange(10_000, 10_000 + pool)
        if uid not in self.names:
            r = self.rnd
            self.names[uid] = (
                r.choice(_EN_NICKS) + str(r.randrange(100))
                if r.random() < 0.1
                else r.choice(_NICK_HEAD) + r.choice(_NICK_BODY) + r.choice(_NICK_TAIL)
            )
        return {"id": str(uid), "name": self.names[uid]}

    def chat(self, memes: float, favourites: list[str] | None = None) -> str:
        """One danmaku: a meme with probability ``memes`` (from ``favourites`` if given),
        else a line of its own (a comment, a question, a greeting, English)."""
        r = self.rnd
        if r.random() < memes:
            return r.choice(MEMES[r.choice(favourites or list(MEMES))])
        pick = r.random()
        if pick < 0.45:
            return r.choice(_SUBJECTS) + r.choice(_COMMENTS)
        if pick < 0.7:
            return r.choice(_QUESTIONS)
        if pick < 0.85:
            return r.choice(_GREETINGS)
        return r.choice(_ENGLISH)

    def times(self, start: float, end: float, per_minute: float) -> Iterator[float]:
        t = start + self.rnd.expovariate(per_minute / 60.0)
        while t < end:
            yield t
            t += self.rnd.expovariate(per_minute / 60.0)


def room_log(seed: int = 1) -> list[dict[str, Any]]:
    """The room's chat log, sorted by time; every id names its phase (``busy-17``)."""
    room = Room(seed)
    out: list[dict[str, Any]] = []

    def add(t: float, kind: str, **fields: Any) -> None:
        out.append({"t": round(t, 3), "kind": kind, "user": fields.pop("user", room.user()),
                    **fields})  # fmt: skip

    start = 0.0
    for phase, seconds in PHASES:
        end = start + seconds
        if phase == "quiet":  # one event at a time, far apart: each finds the daemon idle
            t, i = start + 1.0, 0
            while t < end - 5:
                kind = ("danmaku", "danmaku", "gift", "danmaku", "super_chat")[i % 5]
                if kind == "danmaku":
                    add(t, kind, text=room.chat(0.2))
                elif kind == "gift":
                    add(t, kind, gift="辣条", count=1, amount=0.1)
                else:
                    add(t, kind, text=room.rnd.choice(SUPER_TEXTS), amount=30)
                t, i = t + room.rnd.uniform(7.0, 9.0) + (6.0 if kind == "super_chat" else 0), i + 1
        elif phase in ("busy", "storm"):
            storm = phase == "storm"
            favourites = room.rnd.sample(list(MEMES), 2) if storm else None
            for t in room.times(start, end, 120):
                add(t, "danmaku", text=room.chat(0.75 if storm else 0.3, favourites))
            for t in room.times(start, end, 30 if not storm else 10):
                gift, price = room.rnd.choice(SMALL_GIFTS)
                user = room.user()
                for k in range(1 if room.rnd.random() < 0.8 else room.rnd.randint(2, 3)):
                    add(t + 0.4 * k, "gift", user=user, gift=gift, count=1, amount=price)
            for t in room.times(start, end, 2 if not storm else 1):
                add(t, "super_chat", text=room.rnd.choice(SUPER_TEXTS),
                    amount=room.rnd.choice([30, 50, 100]))  # fmt: skip
            if not storm:
                add(start + seconds * 0.6, "guard", gift="舰长", count=1, amount=138)
            for t in room.times(start, end, 12):
                add(t, "enter")
            for t in room.times(start, end, 6):
                add(t, "follow")
        else:  # lull: sparse chat
            for t in room.times(start, end, 6):
                add(t, "danmaku", text=room.chat(0.2))
        start = end
    out.sort(key=lambda e: e["t"])
    bounds = phase_bounds()
    for n, ev in enumerate(out):
        ev["id"] = f"{phase_at(ev['t'], bounds)}-{n}"
    return out


def phase_bounds() -> list[tuple[str, float, float]]:
    out, start = [], 0.0
    for phase, seconds in PHASES:
        out.append((phase, start, start + seconds))
        start += seconds
    return out


def phase_at(t: float, bounds: list[tuple[str, float, float]]) -> str:
    return next((p for p, a, b in bounds if a <= t < b), bounds[-1][0])


def phase_of(raw_id: str) -> str:
    """The phase a log line's id names (``busy-17`` → busy)."""
    return raw_id.split("-", 1)[0] or "unknown"


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


# -- what the daemon did ------------------------------------------------------------------------


@dataclass
class Line:
    """One line the bot said (an utterance that started playing)."""

    utt: Utterance
    start: float
    end: float | None = None
    played: bool = False


@dataclass
class Probe:
    """The daemon's own hooks: arrivals (idle or not), line starts and ends, the audible
    stretches of the output, every terminal ledger line with its fields."""

    daemon: Daemon
    sample_rate: int = 24000
    arrivals: dict[str, ChatEvent] = field(default_factory=dict)
    idle_at_arrival: dict[str, bool] = field(default_factory=dict)
    lines: dict[str, Line] = field(default_factory=dict)
    terminal: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    audible: list[list[float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        d = self.daemon
        handle, on_started, on_done = d.handle, d._on_started, d._on_done

        def wrapped_handle(item: ChatEvent | Retraction) -> None:
            if isinstance(item, ChatEvent):
                busy = (len(d.scheduler) or d.worker.current is not None
                        or (d.player is not None and d.player.now_playing is not None))  # fmt: skip
                self.idle_at_arrival[item.id] = not busy
                self.arrivals[item.id] = item
            handle(item)

        def wrapped_started(utt: Utterance, at: float) -> None:
            self.lines[utt.id] = Line(utt, at)
            on_started(utt, at)

        def wrapped_done(utt: Utterance, played: bool) -> None:
            line = self.lines.get(utt.id)
            if line is not None:
                line.end, line.played = time.monotonic(), played
            on_done(utt, played)

        d.handle = wrapped_handle  # type: ignore[method-assign]
        d._on_started = wrapped_started  # type: ignore[method-assign]
        d._on_done = wrapped_done  # type: ignore[method-assign]
        d.ledger.listeners.append(self._on_ledger)

    def _on_ledger(self, event: ChatEvent, state: Terminal | None, fields: dict[str, Any]) -> None:
        if state is not None:
            self.terminal[event.id] = (str(state.value), dict(fields))

    def tap(self, buf: np.ndarray, now: float) -> None:
        nz = np.flatnonzero(buf)
        if not len(nz):
            return
        start, end = now + nz[0] / self.sample_rate, now + (nz[-1] + 1) / self.sample_rate
        if self.audible and start - self.audible[-1][1] < 0.05:
            self.audible[-1][1] = end
        else:
            self.audible.append([start, end])

    def covering(self, event_id: str) -> Line | None:
        """The line that spoke this event: its own, or the one it was merged into (a gift
        repeat into its first, that one into a combined line...)."""
        seen: set[str] = set()
        while event_id not in seen:
            seen.add(event_id)
            line = self.lines.get(event_id)
            if line is not None and line.played:
                return line
            into = self.terminal.get(event_id, ("", {}))[1].get("merged_into")
            if not into:
                return None
            event_id = str(into)
        return None

    def audible_between(self, a: float, b: float) -> float:
        return sum(max(0.0, min(e, b) - max(s, a)) for s, e in self.audible)


def report(probe: Probe, log: list[dict[str, Any]]) -> dict[str, Any]:
    """Per phase: acknowledgements per kind, plain chat, airtime share, drain."""
    t_of = {e["id"]: e["t"] for e in log}
    offsets = [ev.received_mono - t_of[ev.raw_id] for ev in probe.arrivals.values()
               if ev.raw_id in t_of]  # fmt: skip
    zero = float(np.median(offsets)) if offsets else 0.0  # log time 0 on the loop's clock
    out: dict[str, Any] = {}
    by_phase: dict[str, list[ChatEvent]] = defaultdict(list)
    for ev in probe.arrivals.values():
        by_phase[phase_of(ev.raw_id)].append(ev)
    for phase, a, b in phase_bounds():
        events = by_phase.get(phase, [])
        kinds: dict[str, Any] = {}
        last_end = zero + b
        for kind in (*PAID, *WELCOMES):
            of_kind = [e for e in events if str(e.kind) == kind]
            if not of_kind:
                continue
            lat, never, slowest = [], 0, (0.0, "")
            for ev in of_kind:
                line = probe.covering(ev.id)
                if line is None:
                    never += 1
                    continue
                lat.append(line.start - ev.received_mono)
                slowest = max(slowest, (lat[-1], f"{ev.raw_id} by {line.utt.id}: {line.utt.text}"))
                last_end = max(last_end, line.end or line.start)
            kinds[kind] = {"n": len(of_kind), "acked": len(lat), "never": never,
                           "p50_s": pct(lat, 50), "p95_s": pct(lat, 95),
                           "slowest": slowest}  # fmt: skip
        chat = [e for e in events if str(e.kind) == "danmaku"]
        sent = {canonical(e.text) for e in chat}
        heard: set[str] = set()
        read_lines: dict[str, list[ChatEvent]] = defaultdict(list)
        for ev in chat:
            line = probe.covering(ev.id)
            if line is None:
                continue
            heard.add(canonical(ev.text))
            read_lines[line.utt.id].append(ev)
            last_end = max(last_end, line.end or line.start)
        ages = [probe.lines[lid].start - max(e.received_mono for e in evs)
                for lid, evs in read_lines.items()]  # fmt: skip
        idle = [probe.lines[e.id].start - e.received_mono for e in events
                if probe.idle_at_arrival.get(e.id) and e.id in probe.lines]  # fmt: skip
        out[phase] = {
            "seconds": b - a, "kinds": kinds,
            "chat": {"n": len(chat), "lines": len(read_lines), "distinct_sent": len(sent),
                     "distinct_heard": len(heard), "age_p50_s": pct(ages, 50),
                     "age_p95_s": pct(ages, 95)},
            "airtime_share": probe.audible_between(zero + a, zero + b) / (b - a),
            "idle_ttfa_ms": {"n": len(idle), "p50": pct(idle, 50) * 1e3,
                             "p95": pct(idle, 95) * 1e3},
            "drain_s": max(0.0, last_end - (zero + b)),
        }  # fmt: skip
    states = Counter(s for s, _ in probe.terminal.values())
    return {"phases": out, "terminals": dict(states), "received": len(probe.arrivals),
            "lines": len(probe.lines)}  # fmt: skip


# -- running it ---------------------------------------------------------------------------------


def config_for(root: Path, log_path: Path, args: argparse.Namespace) -> Path:
    engine: dict[str, Any] = {"type": "tone", "seconds_per_char": args.seconds_per_char}
    voice: dict[str, Any] = {}
    if args.engine in ("f5", "student"):
        engine = {"type": "f5", "compile_cache": str(root / "inductor")}
        if args.engine == "student":
            engine["model"] = "DMOSpeech2"
        if args.random_weights:
            engine["random_weights"] = True
        voice = {"language": "zh"}
    config: dict[str, Any] = {
        "engine": engine,
        "voices": {"default": voice},
        "connectors": [{"type": "replay", "path": str(log_path), "start_delay_s": 1.0}],
        "player": {"device": "none"},
        "queue": {"pending_file": None},
        "api": {"enabled": False},
        "log": {"level": "warning", "format": "json"},
    }
    for item in args.set or []:  # --set airtime.max_share=0.5
        key, _, value = item.partition("=")
        *parents, leaf = key.split(".")
        node = config
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


async def run_one(path: Path, log: list[dict[str, Any]]) -> dict[str, Any]:
    daemon = Daemon(load_config(path), until_idle=True, shutdown_grace_s=5.0)
    probe = Probe(daemon)  # hooks in before start: the player binds them when built
    task = asyncio.create_task(daemon.run(lambda line: print(f"  {line}", flush=True)))
    await daemon.ready.wait()
    player = daemon.player
    assert player is not None and isinstance(player.output, NullOutput)
    probe.sample_rate = player.sample_rate
    player.output.tap = probe.tap  # the replay waits start_delay_s: nothing was played yet
    code = await task
    out = report(probe, log)
    out["exit_code"] = code
    return out


def _f(x: float, digits: int = 1) -> str:
    return "–" if x != x else f"{x:.{digits}f}"


def print_tables(r: dict[str, Any]) -> None:
    print("\n| phase | kind | events | acknowledged | never | latency p50 / p95 s |")
    print("|---|---|---|---|---|---|")
    for phase, p in r["phases"].items():
        for kind, k in p["kinds"].items():
            print(f"| {phase} | {kind} | {k['n']} | {k['acked']} | {k['never']} | "
                  f"{_f(k['p50_s'])} / {_f(k['p95_s'])} |")  # fmt: skip
    print("\n| phase | danmaku | lines read | distinct heard / sent | age p50 / p95 s "
          "| airtime share | idle TTFA p50 ms | drain after s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for phase, p in r["phases"].items():
        c, idle = p["chat"], p["idle_ttfa_ms"]
        print(f"| {phase} | {c['n']} | {c['lines']} | {c['distinct_heard']} / "
              f"{c['distinct_sent']} | {_f(c['age_p50_s'])} / {_f(c['age_p95_s'])} | "
              f"{p['airtime_share']:.0%} | {_f(idle['p50'], 0)} (n {idle['n']}) | "
              f"{_f(p['drain_s'])} |")  # fmt: skip
    print(f"\n{r['received']} events, {r['lines']} lines; outcomes {r['terminals']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--log", type=Path, default=DEFAULT_LOG, help="the chat log to replay")
    ap.add_argument("--make-log", type=Path, help="write the room's log here and exit")
    ap.add_argument("--seed", type=int, default=1, help="for --make-log")
    ap.add_argument("--engine", choices=("tone", "f5", "student"), default="tone")
    ap.add_argument("--random-weights", action="store_true", help="f5/student: random weights")
    ap.add_argument("--seconds-per-char", type=float, default=0.22,
                    help="tone engine: the speaking rate (real speech ≈ 0.22)")  # fmt: skip
    ap.add_argument("--set", action="append", help="a config key, e.g. airtime.max_share=0.5")
    ap.add_argument("--json", type=Path, help="write the results here")
    a = ap.parse_args(argv)
    if a.make_log:
        a.make_log.parent.mkdir(parents=True, exist_ok=True)
        lines = room_log(a.seed)
        a.make_log.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in lines),
                              encoding="utf-8")  # fmt: skip
        print(f"{a.make_log}: {len(lines)} events {dict(Counter(e['kind'] for e in lines))}")
        return 0
    log = [json.loads(line) for line in a.log.read_text(encoding="utf-8").splitlines() if line]
    logs.configure("warning", "console")  # the daemon's per-message lines would drown the table
    counts = Counter((phase_of(e["id"]), e["kind"]) for e in log)
    print(f"# {a.log.name}: {len(log)} events; {dict(sorted(counts.items()))}", flush=True)
    root = Path(tempfile.mkdtemp(prefix="bench-room-"))
    result = asyncio.run(run_one(config_for(root, a.log.resolve(), a), log))
    if a.json:
        a.json.write_text(json.dumps(result, indent=1, default=str))
    print_tables(result)
    return 0 if result["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
