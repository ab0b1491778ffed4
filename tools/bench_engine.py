"""Benchmark the f5 engine against upstream f5-tts, in one process on one GPU, same model.

    python tools/bench_engine.py --random-weights            # full F5TTS_v1_Base size, random
    python tools/bench_engine.py --checkpoint model.safetensors --vocoder vocos_dir
    python tools/bench_engine.py --random-weights --json out.json --profile

For 2/5/10 s outputs at NFE 32/16/7 (and the DMOSpeech2 student at 4/2 steps: a second
engine, random weights of the same v0 F5 Base size, no guidance pass; and a third with the
teacher-guided start, ``--student-teacher-steps``: a guided teacher of the same size first)
it prints medians of:
RTF and time to first audio for upstream ``infer_batch_process`` and for ours (same total
frames, so same work), the speed-up, model FLOP utilisation against a measured fp16 matmul
peak, peak GPU memory; and cold-start, warm-up and danmaku time-to-first-audio figures.
Random weights cost the same compute as the trained model but say nothing about audio quality.
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

T_START = time.perf_counter()
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

# tools/ is on the path when this runs as a script
from flops import matmul_peak, step_flops  # type: ignore[import-not-found]  # noqa: E402

from ishowtts.engines.base import Voice  # noqa: E402
from ishowtts.engines.f5.engine import F5Engine  # noqa: E402
from ishowtts.engines.f5.fastdit import conv_mish  # noqa: E402
from ishowtts.engines.f5.sampler import Job  # noqa: E402
from ishowtts.engines.f5.voices import HOP, SAMPLE_RATE  # noqa: E402

FPS = SAMPLE_RATE / HOP
DANMAKU = "主播今天唱得真好听，再来一首吧"  # 15 characters
WORDS = "the quick brown fox jumps over the lazy dog and runs far away"


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def p95(xs: list[float]) -> float:
    return float(np.percentile(xs, 95)) if xs else float("nan")


def text_for(engine: F5Engine, voice: str, seconds: float) -> str:
    v = engine.voices[voice]
    words = WORDS.split()
    out: list[str] = []
    while v.rate.frames(" ".join(out)) < seconds * FPS:
        out.append(words[len(out) % len(words)])
    return " ".join(out)


def timed(fn: Any) -> tuple[Any, float]:
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def run_flops(engine: F5Engine, n: int, steps: int) -> float:
    """Model FLOPs of one request: ``steps`` steps, or with the teacher-guided start the
    teacher's guided evaluations and the student's steps from its step 1."""
    plan = engine._teacher_plan(steps)
    if plan is None:
        return step_flops(engine.fast, n) * steps
    return plan.evals * step_flops(engine.teacher, n) + (steps - 1) * step_flops(engine.fast, n)


def bench_ours(engine: F5Engine, voice: str, total: int, steps: int, text: str,
               repeats: int) -> dict[str, Any]:  # fmt: skip
    """One chunk of exactly ``total`` frames (reference included), mel to audio on the host,
    through the engine's own ``render``."""
    v = engine.voices[voice]
    tokens = engine._tokens(v.ref_text + text)
    runner = engine.runners.get(engine.bucket(total))
    totals = []
    torch.cuda.reset_peak_memory_stats()
    for i in range(repeats + 1):
        job = Job(v.mel, tokens, total, seed=i)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        audio = engine.render(job, steps)
        tt = time.perf_counter() - t0
        if i:  # the first run fills caches
            totals.append(tt)
    gen_s = (total - v.frames) / FPS
    return {
        "total_s": median(totals),
        "total_p95_s": p95(totals),
        "rtf": median(totals) / gen_s,
        "ttfa_s": median(totals),  # one chunk: its audio is the first audio
        "tflops": run_flops(engine, total, steps) / median(totals) / 1e12,
        "bucket": runner.n if runner is not None else None,
        "audio_s": len(audio) / SAMPLE_RATE,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
    }


def _stub_missing(name: str) -> None:
    """utils_infer imports matplotlib for plotting only; a bare GPU image may lack it."""
    import importlib.util
    import types

    if importlib.util.find_spec(name) is None:
        mod = types.ModuleType(name)
        mod.use = lambda *a, **k: None  # type: ignore[attr-defined]
        sys.modules[name] = mod
        sys.modules[f"{name}.pylab"] = types.ModuleType(f"{name}.pylab")


def bench_upstream(engine: F5Engine, voice: str, total: int, steps: int, text: str,
                   repeats: int) -> dict[str, Any]:  # fmt: skip
    _stub_missing("matplotlib")
    from f5_tts.infer.utils_infer import infer_batch_process

    v = engine.voices[voice]
    data, sr = sf.read(str(v.path), dtype="float32", always_2d=True)
    wave = torch.from_numpy(data.mean(axis=1))[None]
    fix = total * HOP / SAMPLE_RATE + 1e-6
    ref_text = v.ref_text.strip()
    times = []
    torch.cuda.reset_peak_memory_stats()
    for i in range(repeats + 1):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = next(infer_batch_process((wave, sr), ref_text, [text], engine.cfm, engine.vocoder,
                                       nfe_step=steps, cfg_strength=engine.options.cfg_strength,
                                       sway_sampling_coef=engine.options.sway, fix_duration=fix,
                                       device="cuda", progress=None))  # fmt: skip
        torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
        audio = out[0]
    gen_s = (total - wave.shape[-1] // HOP) / FPS
    return {
        "total_s": median(times),
        "total_p95_s": p95(times),
        "rtf": median(times) / gen_s,
        "ttfa_s": median(times),
        "out_s": len(audio) / SAMPLE_RATE,
        "tflops": step_flops(engine.fast, total) * steps / median(times) / 1e12,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
    }


def breakdown(engine: F5Engine, voice: str, total: int, steps: int, text: str) -> dict[str, float]:
    """Milliseconds of each phase of one warm request (synchronised between phases)."""
    v = engine.voices[voice]
    o = engine.options
    runner = engine.runners[engine.bucket(total)]
    teacher = engine._teacher_plan(steps)
    out: dict[str, float] = {}
    for _ in range(3):  # keep the last (warm) pass
        t0 = time.perf_counter()
        plan = engine.plan(text, v)
        out["text_front_ms"] = (time.perf_counter() - t0) * 1e3
        t0 = time.perf_counter()
        tokens = engine._tokens(v.ref_text + text)
        out["tokenise_ms"] = (time.perf_counter() - t0) * 1e3
        job = Job(v.mel, tokens, total, seed=0)
        assert engine.schedules is not None
        _, t = timed(lambda job=job: runner.run([job], steps, o.cfg_strength, o.sway,
                                                 engine.schedules, teacher))  # fmt: skip
        out["run_ms"] = t * 1e3
        out["chunks"] = len(plan)
    for name in ("prepare", "step", "vocode", "teacher_prepare", "teacher_step"):
        if name in runner.graphs:
            times = []
            for _ in range(5):
                runner.idx.zero_()
                if runner.teacher is not None:
                    runner.tidx.zero_()
                _, t = timed(runner.graphs[name].replay)
                times.append(t)
            out[f"{name}_graph_ms"] = median(times) * 1e3
    return out


def danmaku_ttfa(engine: F5Engine, voice: str, repeats: int) -> dict[str, float]:
    out = []
    for _ in range(repeats + 1):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        gen = engine.synthesize(DANMAKU, voice)
        next(gen)
        out.append(time.perf_counter() - t0)
        for _ in gen:
            pass
    out = out[1:]
    return {"p50_s": median(out), "p95_s": p95(out)}


def profile(engine: F5Engine, voice: str, total: int, steps: int, text: str) -> str:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as prof

    bench_ours(engine, voice, total, steps, text, 1)
    with prof(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
        bench_ours(engine, voice, total, steps, text, 2)
    return p.key_averages().table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=60)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--random-weights", action="store_true")
    src.add_argument("--checkpoint")
    ap.add_argument("--vocoder", help="local Vocos dir (default: the hub)")
    ap.add_argument("--seconds", default="2,5,10")
    ap.add_argument("--nfe", default="32,16,7")
    ap.add_argument("--student-steps", default="4,2", help="DMOSpeech2 student rows ('' = none)")
    ap.add_argument("--student-teacher-steps", type=int, default=4,
                    help="rows for the student with the teacher-guided start, this many teacher "
                         "steps (the reference's 4); 0 = none")  # fmt: skip
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--upstream-repeats", type=int, default=3)
    ap.add_argument("--no-upstream", action="store_true")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--no-graphs", action="store_true")
    ap.add_argument("--no-fused-conv", action="store_true", help="torch grouped conv instead")
    ap.add_argument("--attention", default="auto", help="auto|default|flash|cudnn|efficient")
    ap.add_argument("--compile-mode", help="torch.compile mode, e.g. max-autotune-no-cudagraphs")
    ap.add_argument("--bucket-frames", type=int, default=32)
    ap.add_argument("--private-pools", action="store_true", help="one graph memory pool a bucket")
    ap.add_argument("--cache-dir", help="inductor cache (default: a fresh one: a cold start)")
    ap.add_argument("--voice", default="en", choices=["en", "zh"])
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("needs a CUDA GPU", file=sys.stderr)
        return 2
    t_import = time.perf_counter() - T_START
    cache = a.cache_dir or tempfile.mkdtemp(prefix="inductor-")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
    seconds = [float(s) for s in a.seconds.split(",")]
    nfes = [int(s) for s in a.nfe.split(",")]
    opts: dict[str, Any] = {
        "steps": max(nfes), "compile": not a.no_compile, "cuda_graphs": not a.no_graphs,
        "compile_cache": cache, "bucket_frames": a.bucket_frames, "language": a.voice,
        "share_graph_pool": not a.private_pools, "compile_mode": a.compile_mode,
        "fused_conv": not a.no_fused_conv, "attention": a.attention,
        "background_warmup": False,  # every bucket before ready (tools/bench_coldstart.py: staged)
    }  # fmt: skip
    if a.random_weights:
        opts["random_weights"] = True
    else:
        opts["checkpoint"] = a.checkpoint
        if a.vocoder:
            opts["vocoder"] = a.vocoder
    dev = torch.cuda.get_device_name()
    peak = matmul_peak()
    print(f"# {dev}, torch {torch.__version__}, fp16 matmul peak {peak:.0f} TFLOP/s", flush=True)

    def progress(line: str) -> None:
        print(f"  [{time.perf_counter() - T_START:6.1f}s] {line}", flush=True)

    t0 = time.perf_counter()
    engine = F5Engine(opts)
    engine.load({"v": Voice("v")}, progress)
    t_load = time.perf_counter() - t0
    # Every step count we bench gets a table; warm-up captures one graph per bucket.
    engine.steps = max(nfes)
    for s in nfes:
        engine.schedules.get(s, engine.options.sway)  # type: ignore[union-attr]
    engine.warmup(progress)
    t_warm = time.perf_counter() - t0 - t_load
    result: dict[str, Any] = {
        "device": dev, "torch": torch.__version__, "peak_tflops": peak,
        "import_s": t_import, "load_s": t_load, "warmup_s": t_warm,
        "cold_start_s": t_load + t_warm, "buckets": len(engine.runners),
        "compile": not a.no_compile, "cuda_graphs": not a.no_graphs, "rows": [],
        "fused_conv": engine.fast is not None and engine.fast.conv_fn is not conv_mish,
        "attention": a.attention,
    }  # fmt: skip
    v = engine.voices["v"]
    for sec in seconds:
        total = engine.bucket(v.frames + round(sec * FPS))  # durations sit on the bucket grid
        text = text_for(engine, "v", sec)
        for nfe in nfes:
            row: dict[str, Any] = {"seconds": sec, "nfe": nfe, "frames": total,
                                   "out_s": (total - v.frames) / FPS}  # fmt: skip
            row["ours"] = bench_ours(engine, "v", total, nfe, text, a.repeats)
            if not a.no_upstream:
                row["upstream"] = bench_upstream(engine, "v", total, nfe, text, a.upstream_repeats)
                row["speedup"] = row["upstream"]["total_s"] / row["ours"]["total_s"]
            result["rows"].append(row)
            print(f"  {sec:g}s nfe {nfe}: ours {row['ours']['total_s'] * 1e3:.1f} ms"
                  + (f", upstream {row['upstream']['total_s'] * 1e3:.1f} ms"
                     if "upstream" in row else ""), flush=True)  # fmt: skip
    total5 = engine.bucket(v.frames + round(5 * FPS))
    result["breakdown_5s_nfe16"] = breakdown(engine, "v", total5, 16, text_for(engine, "v", 5))
    print(
        "  breakdown 5 s NFE 16:", {k: round(x, 2) for k, x in result["breakdown_5s_nfe16"].items()}
    )
    step_ms = result["breakdown_5s_nfe16"].get("step_graph_ms")
    if step_ms:
        result["step_tflops_5s"] = step_flops(engine.fast, total5) / (step_ms / 1e3) / 1e12
    for nfe in (16, 7):
        engine.steps = nfe
        result[f"danmaku_ttfa_nfe{nfe}"] = danmaku_ttfa(engine, "v", 10)
    if a.profile:
        total = engine.bucket(v.frames + round(5 * FPS))
        result["profile"] = profile(engine, "v", total, 16, text_for(engine, "v", 5))
        print(result["profile"])
    student_steps = [int(s) for s in a.student_steps.split(",") if s.strip()]
    if student_steps:
        upstream16 = {r["seconds"]: r["upstream"]["total_s"] for r in result["rows"]
                      if r["nfe"] == 16 and "upstream" in r}  # fmt: skip
        engine.close()
        del engine
        result["student"] = bench_student(opts, seconds, student_steps, a.repeats, upstream16,
                                          progress)  # fmt: skip
        guided = [s for s in student_steps if s >= 2]
        if a.student_teacher_steps and guided:
            result["student_teacher"] = bench_student(
                opts, seconds, guided, a.repeats, upstream16, progress, a.student_teacher_steps
            )
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1, default=str))
    print_table(result)
    return 0


def bench_student(opts: dict[str, Any], seconds: list[float], steps_list: list[int],
                  repeats: int, upstream16: dict[float, float], progress: Any,
                  teacher_steps: int = 0) -> dict[str, Any]:  # fmt: skip
    """The DMOSpeech2 student in its own engine (random weights unless --checkpoint names a
    student file; the same v0 F5 Base size as the published one); ``teacher_steps``: with
    the teacher-guided start (a random teacher of the same size)."""
    sopts = {**opts, "model": "DMOSpeech2", "steps": max(steps_list),
             "teacher_steps": teacher_steps}  # fmt: skip
    if not sopts.get("random_weights"):
        sopts.pop("checkpoint", None)  # an F5 file does not fit: the published student
    t0 = time.perf_counter()
    engine = F5Engine(sopts)
    engine.load({"v": Voice("v")}, progress)
    for s in steps_list:
        engine.schedules.student(s, engine.options.sway)  # type: ignore[union-attr]
    engine.warmup(progress)
    out: dict[str, Any] = {"cold_start_s": time.perf_counter() - t0, "rows": [],
                           "teacher_steps": teacher_steps}  # fmt: skip
    v = engine.voices["v"]
    for sec in seconds:
        total = engine.bucket(v.frames + round(sec * FPS))
        text = text_for(engine, "v", sec)
        for steps in steps_list:
            row: dict[str, Any] = {"seconds": sec, "steps": steps, "frames": total,
                                   "out_s": (total - v.frames) / FPS}  # fmt: skip
            row["ours"] = bench_ours(engine, "v", total, steps, text, repeats)
            if sec in upstream16:
                row["vs_upstream_nfe16"] = upstream16[sec] / row["ours"]["total_s"]
            out["rows"].append(row)
            label = f" + teacher {teacher_steps}" if teacher_steps else ""
            print(f"  student{label} {sec:g}s {steps} steps: "
                  f"{row['ours']['total_s'] * 1e3:.1f} ms", flush=True)  # fmt: skip
    total5 = engine.bucket(v.frames + round(5 * FPS))
    out["breakdown_5s"] = breakdown(engine, "v", total5, steps_list[0], text_for(engine, "v", 5))
    step_ms = out["breakdown_5s"].get("step_graph_ms")
    if step_ms:
        out["step_tflops_5s"] = step_flops(engine.fast, total5) / (step_ms / 1e3) / 1e12
    for steps in steps_list:
        engine.steps = steps
        out[f"danmaku_ttfa_{steps}"] = danmaku_ttfa(engine, "v", 10)
    engine.close()
    return out


def print_student(r: dict[str, Any], key: str = "student") -> None:
    s = r[key]
    if s.get("teacher_steps"):
        print(f"\n## DMOSpeech2 student with the teacher-guided start ({s['teacher_steps']} "
              "teacher steps + 1 guided evaluation, then the student from step 1)")  # fmt: skip
    else:
        print("\n## DMOSpeech2 student (no guidance pass), same run")
    print("| out | steps | ours ms (RTF) | vs upstream F5 NFE 16 | ours TFLOP/s (MFU) | peak GiB |")
    print("|---|---|---|---|---|---|")
    for row in s["rows"]:
        o = row["ours"]
        mfu = o["tflops"] / r["peak_tflops"] * 100
        vs = f"{row['vs_upstream_nfe16']:.0f}x" if "vs_upstream_nfe16" in row else "-"
        print(f"| {row['out_s']:.2f} s | {row['steps']} | {o['total_s'] * 1e3:.1f} "
              f"({o['rtf']:.4f}) | {vs} | {o['tflops']:.0f} ({mfu:.0f}%) "
              f"| {o['peak_mem_gib']:.2f} |")  # fmt: skip
    b = s["breakdown_5s"]
    if "teacher_step_graph_ms" in b:
        print(f"teacher step (5 s, graph, guided): {b['teacher_step_graph_ms']:.2f} ms; "
              f"teacher prepare {b.get('teacher_prepare_graph_ms', 0):.2f} ms; "
              f"whole request {b['run_ms']:.2f} ms")  # fmt: skip
    if "step_tflops_5s" in s:
        print(f"student step (5 s, graph): {b['step_graph_ms']:.2f} ms = "
              f"{s['step_tflops_5s']:.0f} TFLOP/s (MFU "
              f"{s['step_tflops_5s'] / r['peak_tflops'] * 100:.0f}%)")  # fmt: skip
    for key, d in s.items():
        if key.startswith("danmaku_ttfa_"):
            print(f"student danmaku TTFA ({key.rsplit('_', 1)[1]} steps): p50 "
                  f"{d['p50_s'] * 1e3:.1f} ms, p95 {d['p95_s'] * 1e3:.1f} ms")  # fmt: skip
    print(f"student cold start {s['cold_start_s']:.1f} s")


def print_table(r: dict[str, Any]) -> None:
    print(f"\n## {r['device']} · fp16 · peak {r['peak_tflops']:.0f} TFLOP/s · "
          f"compile={r['compile']} graphs={r['cuda_graphs']} "
          f"fused_conv={r['fused_conv']} attention={r['attention']}")  # fmt: skip
    print(
        "| out | NFE | upstream ms (RTF) | ours ms (RTF) | speed-up | ours TFLOP/s (MFU) "
        "| peak GiB up/ours |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in r["rows"]:
        o, u = row["ours"], row.get("upstream")
        up = f"{u['total_s'] * 1e3:.0f} ({u['rtf']:.4f})" if u else "-"
        mfu = o["tflops"] / r["peak_tflops"] * 100
        mem = (
            f"{u['peak_mem_gib']:.2f}/{o['peak_mem_gib']:.2f}" if u else f"{o['peak_mem_gib']:.2f}"
        )
        sp = f"{row['speedup']:.1f}x" if u else "-"
        print(f"| {row['out_s']:.2f} s | {row['nfe']} | {up} | {o['total_s'] * 1e3:.1f} "
              f"({o['rtf']:.4f}) | {sp} | {o['tflops']:.0f} ({mfu:.0f}%) | {mem} |")  # fmt: skip
    if "step_tflops_5s" in r:
        b = r["breakdown_5s_nfe16"]
        print(
            f"one step (5 s, graph): {b['step_graph_ms']:.2f} ms = {r['step_tflops_5s']:.0f} "
            f"TFLOP/s (MFU {r['step_tflops_5s'] / r['peak_tflops'] * 100:.0f}%) · prepare "
            f"{b.get('prepare_graph_ms', 0):.2f} ms · vocoder {b.get('vocode_graph_ms', 0):.2f} ms"
        )
    for nfe in (16, 7):
        d = r[f"danmaku_ttfa_nfe{nfe}"]
        print(
            f"danmaku TTFA (15 chars, warm, NFE {nfe}): p50 {d['p50_s'] * 1e3:.1f} ms, "
            f"p95 {d['p95_s'] * 1e3:.1f} ms"
        )
    print(f"cold start {r['cold_start_s']:.1f} s (load "
          f"{r['load_s']:.1f} s + warm-up {r['warmup_s']:.1f} s, {r['buckets']} buckets) · "
          f"imports {r['import_s']:.1f} s")  # fmt: skip
    if "student" in r:
        print_student(r)
    if "student_teacher" in r:
        print_student(r, "student_teacher")


if __name__ == "__main__":
    sys.exit(main())
