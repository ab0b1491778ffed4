"""How fast ``ishowtts logs`` reads a flood: N chat events (default 50,000) logged by the real
ledger (received, then one fate each; Chinese and English texts, some with escapes and lone
surrogates) as the daemon writes them, then

- read: ``ishowtts logs FILE`` to a pipe, and ``--summary``: wall time, events/s;
- follow: ``ishowtts logs -f FILE`` running while the events are appended as fast as the
  writer can go: how long after the last line is written the viewer has shown it (lag).

    python tools/bench_logs.py                # 50,000 events
    python tools/bench_logs.py --events 5000  # a quick look
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WRITER = """
import random, sys
from ishowtts import logs
from ishowtts.events import ChatEvent, Kind, User
from ishowtts.queue.ledger import Ledger, Terminal
logs.configure("info", "json")
ledger, rng = Ledger(), random.Random(7)
words = ["主播晚上好", "哈哈哈哈", "666", "hello from chat", "这个操作太秀了", "lone \\ud83d half",
         "\\x1b[2J escape", "明天还播吗？", "gg wp", "😂😂"]
fates = [(Terminal.SPOKEN, None)] * 12 + [(Terminal.DROPPED, "duplicate")] * 3 + [
    (Terminal.DROPPED, "blocked_keyword"), (Terminal.EXPIRED, "ttl"),
    (Terminal.EVICTED, "queue_full"), (Terminal.REMOVED, "recalled")]
kinds = [Kind.DANMAKU] * 8 + [Kind.GIFT, Kind.ENTER, Kind.SUPER_CHAT]
for n in range(int(sys.argv[1])):
    user = User(str(1000 + rng.randrange(500)), f"viewer{rng.randrange(500)}")
    event = ChatEvent("bilibili", "1", rng.choice(kinds), user, " ".join(rng.choices(words, k=3)))
    ledger.received(event)
    state, rule = rng.choice(fates)
    ledger.close(event.id, state, **({"rule": rule} if rule else {"text": event.text}))
"""


def write_log(path: Path, events: int) -> float:
    started = time.monotonic()
    with path.open("ab") as out:
        subprocess.run([sys.executable, "-c", WRITER, str(events)], stderr=out, check=True,
                       cwd=ROOT)  # fmt: skip
    return time.monotonic() - started


def timed(args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one ``ishowtts logs`` run (CPU: on a shared machine the wall
    time is mostly waiting for a core)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "ishowtts", "logs", *args], cwd=ROOT, check=True,
                   stdout=subprocess.PIPE)  # fmt: skip
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def follow(path: Path, events: int) -> tuple[float, float]:
    """(seconds the writer took, seconds after it finished until the viewer showed all)."""
    path.write_bytes(b"")
    viewer = subprocess.Popen([sys.executable, "-m", "ishowtts", "logs", "-f", str(path)],
                              cwd=ROOT, stdout=subprocess.PIPE)  # fmt: skip
    assert viewer.stdout is not None
    seen, done = 0, threading.Event()
    last_at = [0.0]

    def count() -> None:
        nonlocal seen
        assert viewer.stdout is not None
        for _ in viewer.stdout:
            seen += 1
            last_at[0] = time.monotonic()
            if seen >= events:
                done.set()
                return

    threading.Thread(target=count, daemon=True).start()
    time.sleep(1.0)  # the viewer is up and at the end of the empty file
    took = write_log(path, events)
    finished = time.monotonic()
    done.wait(timeout=600)
    viewer.terminate()
    viewer.wait(timeout=10)
    return took, max(0.0, last_at[0] - finished)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    random.seed(1)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "flood.log"
        wrote = write_log(log, args.events)
        size = os.path.getsize(log)
        print(f"{args.events} events, {size / 1e6:.1f} MB of log, written in {wrote:.1f} s")
        idle_wall, idle_cpu = timed(["/dev/null"])
        print(f"start-up {idle_wall:6.2f} s wall, {idle_cpu:.2f} s CPU (an empty file)")
        for name, extra in (("read", []), ("summary", ["--summary"])):
            wall, cpu = timed([str(log), *extra])
            rate = args.events / max(cpu - idle_cpu, 1e-3)
            print(f"{name:<8} {wall:6.2f} s wall, {cpu:.2f} s CPU: {rate:,.0f} events/s of CPU "
                  "past start-up")  # fmt: skip
        writer_s, lag = follow(Path(tmp) / "followed.log", args.events)
        rate = args.events / writer_s
        print(f"follow   writer {writer_s:.1f} s ({rate:,.0f} events/s); every line shown "
              f"{lag:.2f} s after the last was written")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
