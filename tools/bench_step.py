"""One F5 step, variant against variant: CUDA-graph time, FLOP utilisation and where the time
goes (kernels grouped by kind), on random full-size weights.

    python tools/bench_step.py --frames 1024 --fuse none,all --profile

Each ``--fuse`` variant builds its own ``FastDiT`` over the same weights (``none``: cuBLAS GEMMs
and inductor's elementwise kernels; ``all``: every fused kernel; or a ``+``-joined subset of
``fastdit.FUSIONS``), compiles it, captures one guided step at ``--frames`` as a CUDA graph and
replays it. The state after ``--steps`` steps is compared with the first variant's, so a faster
variant that computes something else shows up here before the fidelity tests run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

# tools/ is on the path when this runs as a script
from flops import matmul_peak, step_flops  # type: ignore[import-not-found]

from ishowtts.engines.f5 import loader, upstream
from ishowtts.engines.f5.fastdit import FUSIONS, FastDiT
from ishowtts.engines.f5.graphs import GraphRunner, fetch
from ishowtts.engines.f5.sampler import Job, Schedules

KINDS = (  # first match wins: (kind, substrings of the kernel name)
    ("attention", ("fmha", "flash", "attention", "cudnn", "sdpa")),
    ("gemm", ("gemm", "cutlass", "sm90_xmma", "nvjet", "_gemm_kernel", "matmul", "splitk")),
    ("conv", ("conv_mish",)),
)


def kind_of(name: str) -> str:
    low = name.lower()
    for kind, keys in KINDS:
        if any(k in low for k in keys):
            return kind
    return "elementwise/other"


def replay_ms(graph: torch.cuda.CUDAGraph, runner: GraphRunner, reps: int) -> float:
    """Median milliseconds of one replay, over ``reps`` timed batches of 10."""
    times = []
    for _ in range(reps):
        runner.idx.zero_()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(10):
            graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 10)
        runner.idx.zero_()
    return statistics.median(times)


def line_ms(runner: GraphRunner, job: Job, steps: int, schedules: Schedules) -> dict[str, float]:
    """Milliseconds of a whole line (``run`` with the vocoder, audio on the host; median of
    10) beside its graphs replayed back to back: the difference is host-side overhead. Also
    each line after 50 ms idle, as in the daemon between chat messages: a cold CPU launches
    kernels several times slower."""
    walls: dict[str, list[float]] = {"line_ms": [], "idle_line_ms": []}
    for key, idle in (("line_ms", 0.0), ("idle_line_ms", 0.05)):
        for _ in range(11):
            torch.cuda.synchronize()
            time.sleep(idle)
            t0 = time.perf_counter()
            mel, audio = runner.run([job], steps, 2.0, -1.0, schedules)[0]
            assert audio is not None
            fetch(audio, mel)  # as the engine takes it to the host
            walls[key].append((time.perf_counter() - t0) * 1e3)
    graphs = {}
    for name in ("prepare", "step", "vocode"):
        graphs[name] = replay_ms(runner.graphs[name], runner, 5)
    replays = graphs["prepare"] + steps * graphs["step"] + graphs["vocode"]
    return {
        **{k: statistics.median(v[1:]) for k, v in walls.items()},
        "graphs_ms": replays,
        "prepare_ms": graphs["prepare"],
        "vocode_ms": graphs["vocode"],
    }


def line_profile(runner: GraphRunner, job: Job, steps: int, schedules: Schedules) -> str:
    """Host-side time of one line, by operator: what the graphs do not cover."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
        for _ in range(3):
            mel, audio = runner.run([job], steps, 2.0, -1.0, schedules)[0]
            assert audio is not None
            fetch(audio, mel)
    table: str = p.key_averages().table(
        sort_by="self_cpu_time_total", row_limit=14, max_name_column_width=50
    )
    return table


def kernel_table(graph: torch.cuda.CUDAGraph, runner: GraphRunner) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile

    reps = 5
    with profile(activities=[ProfilerActivity.CUDA]) as p:
        for _ in range(reps):
            runner.idx.zero_()
            graph.replay()
        torch.cuda.synchronize()
    per_kernel: dict[str, list[float]] = {}
    for ev in p.events():
        if ev.device_type == torch.autograd.DeviceType.CUDA:
            per_kernel.setdefault(ev.name, []).append(ev.device_time / 1e3)  # ms
    kinds: dict[str, float] = {}
    rows = []
    for name, ts in per_kernel.items():
        total = sum(ts) / reps
        kinds[kind_of(name)] = kinds.get(kind_of(name), 0.0) + total
        rows.append((total, len(ts) // reps, name))
    rows.sort(reverse=True)
    return {
        "kinds_ms": kinds,
        "kernels_per_step": sum(r[1] for r in rows),
        "top": [{"ms": t, "count": c, "name": n[:110]} for t, c, n in rows[:25]],
    }


def gelu_check() -> dict[str, float]:
    """Max |difference| of the fused GEMM+GELU from the unfused tanh and erf forms: which
    GELU the epilogue computes, and how close, in fp32 and fp16."""
    import torch.nn.functional as F

    out = {}
    for dtype in (torch.float32, torch.float16):
        g = torch.Generator(device="cuda").manual_seed(0)
        x = torch.randn(1984, 1024, device="cuda", generator=g).to(dtype)
        w = (torch.randn(2048, 1024, device="cuda", generator=g) * 0.05).to(dtype)
        b = torch.randn(2048, device="cuda", generator=g).to(dtype)
        fused = torch.ops.ishowtts.linear_gelu(x, w, b).float()
        lin = F.linear(x.float(), w.float(), b.float())
        name = str(dtype).removeprefix("torch.")
        out[f"{name}_vs_tanh"] = (fused - F.gelu(lin, approximate="tanh")).abs().max().item()
        out[f"{name}_vs_erf"] = (fused - F.gelu(lin)).abs().max().item()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="F5TTS_v1_Base")
    ap.add_argument("--frames", default="1024", help="bucket lengths, comma-separated")
    ap.add_argument("--fuse", default="none,all", help="variants, comma-separated")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("needs a CUDA GPU", file=sys.stderr)
        return 2
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="inductor-"))
    torch.manual_seed(0)
    vocab = upstream.load_vocab(str(upstream.vocab_path()))
    with torch.device("cuda"):
        cfm = loader.build_cfm(a.model, {}, vocab)
    loader.randomise(cfm)
    dit = cfm.eval().requires_grad_(False).to("cuda", torch.float16).transformer
    vocoder = loader.load_vocoder("", None, loader.VOCOS_MEL_24KHZ)
    vocoder = vocoder.eval().requires_grad_(False).to("cuda")
    plain_backbone = vocoder.backbone

    peak = matmul_peak()
    print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}, fp16 peak {peak:.0f}")
    result: dict[str, Any] = {"peak_tflops": peak, "rows": [], "gelu_check": gelu_check()}
    print("gelu epilogue vs tanh / erf GELU:", result["gelu_check"])
    for n in (int(s) for s in a.frames.split(",")):
        g = torch.Generator(device="cuda").manual_seed(1)
        nref = n // 2
        job = Job(
            cond=torch.randn(nref, 100, device="cuda", generator=g),
            tokens=torch.randint(1, len(vocab), (n // 3,), device="cuda", generator=g).cpu(),
            frames=n,
            seed=3,
        )
        first = None
        for variant in a.fuse.split(","):
            parts = frozenset(variant.split("+"))
            fuse = FUSIONS if "all" in parts else parts - {"none", "vocoder"}
            # "+vocoder": the vocoder's backbone compiled too (as the engine does)
            vocoder.backbone = (
                torch.compile(plain_backbone, dynamic=True)
                if "vocoder" in parts
                else plain_backbone
            )
            torch._dynamo.reset()  # each variant compiles afresh (no stale guards, no limit)
            fast = FastDiT(dit, fuse=fuse)
            if not a.no_compile:
                fast.compile()
            runner = GraphRunner(
                fast, n, 1, a.steps, vocoder=vocoder, masked=False, min_ref=nref, vocoder_tf32=True
            )
            runner.capture()
            schedules = Schedules(fast)
            runner.run([job], a.steps, 2.0, -1.0, schedules)
            x = runner.x.clone()
            line = line_ms(runner, job, a.steps, schedules)
            err = 0.0 if first is None else ((x - first).norm() / first.norm()).item()
            first = x if first is None else first
            ms = replay_ms(runner.graphs["step"], runner, a.reps)
            flops = step_flops(fast, n)
            row: dict[str, Any] = {
                "frames": n,
                "fuse": variant,
                "step_ms": ms,
                "tflops": flops / ms / 1e9,
                "mfu": flops / ms / 1e9 / peak,
                "rel_err_vs_first": err,
                **line,
            }
            if a.profile:
                row["profile"] = kernel_table(runner.graphs["step"], runner)
                row["line_profile"] = line_profile(runner, job, a.steps, schedules)
            result["rows"].append(row)
            print(
                f"n={n} {variant:>24}: {ms:.3f} ms/step, {row['tflops']:.0f} TFLOP/s "
                f"(MFU {row['mfu'] * 100:.1f} %), rel err vs first {err:.2e}",
                flush=True,
            )
            print("   one line: " + ", ".join(f"{k} {v:.2f}" for k, v in line.items()))
            if a.profile:
                prof = row["profile"]
                print(
                    f"   kernels/step {prof['kernels_per_step']}: "
                    + ", ".join(f"{k} {v:.3f}" for k, v in prof["kinds_ms"].items())
                )
                for r in prof["top"]:
                    print(f"   {r['ms']:.4f} ms x{r['count']:<3} {r['name']}")
                print(row["line_profile"])
            del runner, fast
            torch.cuda.empty_cache()
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
