"""Write a random-weight DMOSpeech2 student checkpoint and duration predictor, in the released
files' layouts, so the engine, tests and benchmarks run without the hub.

    python tools/make_student.py out/              # full size (F5 Base student, 512-wide DP)
    python tools/make_student.py out/ --arch '{"dim": 64, "depth": 2, "heads": 2,
        "dim_head": 32, "text_dim": 32, "conv_layers": 2}' --teacher

Then ``engine: {type: f5, model: DMOSpeech2, checkpoint: out/student.pt,
duration_predictor: out/duration.pt}`` (with the same ``arch`` for a small one; with
``--teacher``, ``teacher_steps: 4`` runs the teacher-guided start). The audio is noise: these
files are for speed and plumbing, never for quality.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ishowtts.engines.f5 import synthetic


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="folder for student.pt and duration.pt")
    ap.add_argument("--arch", default="{}", help="JSON overrides of the student's DiT arch")
    ap.add_argument("--scale", type=float, default=1.0, help="the mel scale to record")
    ap.add_argument(
        "--teacher", action="store_true", help="also store a teacher (for engine.teacher_steps)"
    )
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    try:
        arch = json.loads(a.arch)
    except json.JSONDecodeError as exc:
        print(f"--arch: not JSON: {exc}", file=sys.stderr)
        return 2
    cfm = synthetic.random_student(arch, seed=a.seed)
    teacher = synthetic.random_student(arch, seed=a.seed + 1) if a.teacher else None
    student = synthetic.save_student(cfm, a.out / "student.pt", a.scale, teacher)
    dp = synthetic.save_predictor(synthetic.random_predictor(a.seed), a.out / "duration.pt")
    print(f"wrote {student} and {dp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
