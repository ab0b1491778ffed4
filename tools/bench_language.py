"""How well the daemon tells a chat line's language, and how long it takes: real short lines
(tools/data/chat_lines.tsv: Bilibili danmaku, English and Korean Twitch chat) through
``ishowtts.pipeline.language.Languages`` as the daemon builds it.

    .venv/bin/python tools/bench_language.py [--candidates zh,en,ja,ko] [--repeat 5]

Per label: lines, the share detected as that language (one-language labels), and the share
routed right: a line in a language the voices speak (zh, en, mixed zh+en, and lines that are
no language: pinyin, names, emotes, emoji, digits) must not go elsewhere; a ko or ja line must
go to its language. Time per line: the detector alone, each line ``--repeat`` times.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

from ishowtts.config.chat import LanguagesConfig
from ishowtts.pipeline.language import Languages

DATA = Path(__file__).parent / "data" / "chat_lines.tsv"
SINGLE = {"zh", "en", "ko", "ja"}
ACCEPT = {  # what a label may be detected as and still be read by the right voice
    "zh+en": {"zh", "en"},
    "zh+ja": {"zh", "ja"},
    "latin": {"zh", "en", ""},
    "emote": {"zh", "en", ""},
    "emoji": {""},
    "none": {""},
}


def read(path: Path) -> list[tuple[str, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            label, _source, text = line.split("\t", 2)
            rows.append((label, text))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", default="zh,en,ja,ko")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args(argv)
    rows = read(args.data)
    started = time.perf_counter()
    languages = Languages(LanguagesConfig(candidates=args.candidates.split(",")))
    build_s = time.perf_counter() - started

    by_label: dict[str, list[str]] = defaultdict(list)
    for label, text in rows:
        by_label[label].append(languages.detect(text))
    times = []
    for _ in range(args.repeat):
        for _, text in rows:
            t0 = time.perf_counter()
            languages.detect(text)
            times.append(time.perf_counter() - t0)

    print(f"{len(rows)} lines, candidates {args.candidates}; detector built in {build_s:.2f} s")
    print(f"{'label':8} {'lines':>5} {'exact':>7} {'routed right':>13}  detected as")
    right_all = 0
    for label in sorted(by_label, key=lambda k: -len(by_label[k])):
        got = by_label[label]
        ok = ACCEPT.get(label, {label})
        right = sum(g in ok for g in got)
        right_all += right
        exact = f"{sum(g == label for g in got) / len(got):7.1%}" if label in SINGLE else " " * 7
        seen = ", ".join(f"{k or '-'} {v}" for k, v in sorted(_count(got).items()))
        print(f"{label:8} {len(got):5} {exact} {right / len(got):13.1%}  {seen}")
    print(f"{'all':8} {len(rows):5} {'':7} {right_all / len(rows):13.1%}")
    ms = sorted(t * 1000 for t in times)
    p99 = ms[int(0.99 * (len(ms) - 1))]
    print(
        f"time per line: mean {statistics.fmean(ms):.3f} ms, median {statistics.median(ms):.3f} "
        f"ms, p99 {p99:.3f} ms, max {ms[-1]:.3f} ms ({len(ms)} calls)"
    )
    return 0


def _count(values: list[str]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for v in values:
        out[v] += 1
    return out


if __name__ == "__main__":
    sys.exit(main())
