"""The ``f5`` engine's options (``engine.options`` in config.yaml) and the checks made of them
before any model is built: local paths, the teacher-guided start, model files, voices."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from ...confload import Section
from ..base import Voice, WeightsUnusable
from . import loader
from .voices import ClipLimits, prepare_voice


class F5Options(Section):
    # A config shipped with f5-tts, a YAML path, or DMOSpeech2: the distilled few-step
    # student (a v0 F5 Base DiT sampled without guidance; its checkpoint is a .pt)
    model: str = "F5TTS_v1_Base"
    arch: dict[str, Any] = {}  # overrides of model.arch (tests build tiny models)
    random_weights: bool = False  # benchmarks only: same compute, meaningless audio
    # local .safetensors/.pt, or hf://repo/file; None: the published one for `model`
    checkpoint: str | None = None
    use_ema: bool = True
    vocab: str | None = None  # default: the vocab shipped with f5-tts
    vocoder: str = loader.DEFAULT_VOCODER  # local dir (config.yaml + weights) or hf://repo
    hub_cache: str | None = None
    device: str = "auto"  # auto | cuda | cuda:N | cpu
    precision: Literal["auto", "fp16", "bf16", "fp32"] = "auto"  # auto: fp16 on CUDA
    # F5: NFE (7 and 16 use the pruned schedule), default 16; student: its steps, default 4
    steps: int | None = Field(None, ge=1, le=64)
    cfg_strength: float = Field(2.0, ge=0)  # F5 and the DMOSpeech2 teacher (not the student)
    # DMOSpeech2 only: the teacher-guided start (0: off). The teacher, the F5 model kept in
    # the student's file, takes this many guided Euler steps up to the time of the student's
    # step `student_start_step` and predicts the clean mel; the student refines it from that
    # step on. The reference's default is 4 and 1 (16-point grid stopped at t = .07): 5 guided
    # teacher evaluations, then 3 student steps.
    student_start_step: int = Field(1, ge=1, le=63)
    teacher_steps: int = Field(0, ge=0, le=64)
    teacher_eta: float = Field(1.0, ge=0, le=1)  # noise on the teacher's velocity (0: none)
    # New speech length: the reference's speaking rate, or DMOSpeech2's learned predictor
    # (for every F5 model; a voice's own `duration` wins)
    duration: Literal["rate", "predictor"] = "rate"
    duration_predictor: str = loader.DEFAULT_DURATION_PREDICTOR  # local .pt or hf://repo/file
    sway: float | None = -1.0
    seed: int | None = None  # fixed noise (reproducible audio); None: fresh noise each time
    language: Literal["auto", "en", "zh"] = "auto"  # which shipped clip a voice without audio gets
    emoji: Literal["drop", "name"] = "drop"
    target_rms: float = Field(0.1, gt=0, le=1)
    min_ref_seconds: float = Field(1.0, gt=0)
    max_ref_seconds: float = Field(15.0, gt=0)
    min_seconds: float = Field(0.7, ge=0)  # floor of new speech per chunk (short danmaku)
    first_chunk_seconds: float = Field(4.0, gt=0)  # the first chunk is kept short: it plays first
    max_frames: int = Field(2048, ge=128)  # reference + new speech per chunk: the largest bucket
    bucket_frames: int = Field(32, ge=8)  # shape bucket granularity (CUDA graphs)
    cross_fade: float = Field(0.05, ge=0, le=1)  # seconds of overlap between chunks
    compile: bool = True  # torch.compile the step (CUDA only)
    compile_mode: str | None = None  # e.g. max-autotune-no-cudagraphs (slower start)
    cuda_graphs: bool = True  # one CUDA graph per bucket (CUDA only)
    fused_conv: bool = True  # the position embedding's convolutions as one Triton kernel (CUDA)
    # the step's fused passes (fastdit.FUSIONS: GELU in the GEMM epilogue, RoPE as one Triton
    # kernel, residuals added in the next LayerNorm); false: the plain torch block
    fused_step: bool = True
    # Vocos' fp32 matmuls on TF32 tensor cores (CUDA): its graph 0.85 → 0.49 ms for a 5 s
    # line on an H200; the audio moves by ~4e-4 relative (TF32 keeps fp16's 10-bit mantissa)
    vocoder_tf32: bool = True
    # Attention kernel: auto = cuDNN first on CUDA (falling back where it cannot run a shape)
    attention: Literal["auto", "default", "flash", "cudnn", "efficient", "math"] = "auto"
    compile_cache: str | None = "~/.cache/ishowtts/inductor"  # inductor's on-disk cache
    # Ready once the eager path is warm (seconds); torch.compile runs in a thread of its own
    # and each bucket's CUDA graphs are captured between lines (docs/coldstart.md). false:
    # all of it before ready (tools/warmup.py, benchmarks of the warm engine).
    background_warmup: bool = True
    share_graph_pool: bool = True  # buckets' graphs share one memory pool (they never overlap)
    # Round each chunk's length up to its bucket (at most bucket_frames more): no padding, so
    # no attention mask (faster kernels). The estimate's own error is larger than the rounding.
    quantise_duration: bool = True

    @field_validator("teacher_steps")
    @classmethod
    def _teacher_needs_student(cls, value: int, info: ValidationInfo) -> int:
        if value and not loader.is_student(str(info.data.get("model", ""))):
            raise ValueError(f"needs model: {loader.STUDENT_MODEL} (the teacher is in its file)")
        steps = info.data.get("steps") or 4
        start = info.data.get("student_start_step", 1)
        if value and steps <= start:
            raise ValueError(
                f"needs steps > student_start_step (the student takes over at its step "
                f"{start}), not steps {steps}"
            )
        # A local file is looked into now (check-config, run and say stop here, naming the
        # key); a hub file is checked when it is loaded.
        checkpoint = info.data.get("checkpoint")
        local = isinstance(checkpoint, str) and not checkpoint.startswith(loader.HUB_PREFIX)
        if value and local and not info.data.get("random_weights"):
            path = Path(str(checkpoint)).expanduser()
            if path.is_file() and not loader.has_teacher(path):
                raise ValueError(
                    f"{path} has no teacher ({loader.TEACHER_PREFIX}*) for the teacher-guided "
                    f"start; set teacher_steps: 0 or use a file that keeps its teacher"
                )
        return value

    # Local paths are relative to the config file's folder (validation context ``base_dir``,
    # given by the config loader), like voice clips: the service's working directory is not
    # where its config lives. A missing local file is a config error, found before any load.
    @field_validator("model", "checkpoint", "vocab", "vocoder", "duration_predictor")
    @classmethod
    def _local_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        base = (info.context or {}).get("base_dir")
        if value is None or base is None or value.startswith(loader.HUB_PREFIX):
            return value
        if info.field_name == "model" and Path(value).suffix not in (".yaml", ".yml"):
            return value  # the name of a config shipped with f5-tts
        path = Path(value).expanduser()
        path = path if path.is_absolute() else Path(base) / path
        # Random weights (benchmarks) read neither checkpoint nor vocoder nor predictor; the
        # predictor is read only if a voice asks for it.
        needed = info.field_name in ("model", "vocab") or (
            not info.data.get("random_weights") and info.field_name != "duration_predictor"
        )
        if needed and not path.exists():
            raise ValueError(f"{path} does not exist")
        return str(path)


def fused_passes(o: F5Options) -> frozenset[str] | None:
    return None if o.fused_step else frozenset()  # None: every fusion the device runs


def clip_limits(o: F5Options) -> ClipLimits:
    return ClipLimits(o.min_ref_seconds, o.max_ref_seconds, target_rms=o.target_rms)


def checkpoint_source(o: F5Options) -> str:
    return o.checkpoint or loader.default_checkpoint(o.model)  # each config its own file


def check_files(options: F5Options) -> dict[str, str]:
    """Model files that cannot be had: {option: why}. Local paths are checked by the
    options themselves; hub files only offline (online they are downloaded at start),
    where a file missing from the cache is a configuration problem, not a passing one."""
    if options.random_weights:
        return {}
    try:
        source = checkpoint_source(options)
    except WeightsUnusable as exc:
        return {exc.option: str(exc)}
    # A file at hand (local, or in the hub cache) is judged from its index: wrong model,
    # vocab, a truncated download (checkpoint.py) are config errors found before a load.
    path = loader.cached(source, options.hub_cache)
    if path is not None:
        try:
            loader.check_checkpoint(
                path, options.model, options.arch, options.vocab, options.use_ema
            )
        except WeightsUnusable as exc:
            return {exc.option: str(exc)}
    try:
        loader.check_vocoder(options.vocoder)
    except WeightsUnusable as exc:
        return {exc.option: str(exc)}
    if not loader.offline():
        return {}
    out = {}
    wanted: list[tuple[str, str, str | None]] = [("checkpoint", source, None)]
    if options.vocoder.startswith(loader.HUB_PREFIX):
        wanted += [("vocoder", options.vocoder, "config.yaml")]
    for option, source, filename in wanted:
        if source.startswith(loader.HUB_PREFIX):
            try:
                loader.resolve(source, filename, option, option, options.hub_cache)
            except loader.ModelFileMissing as exc:
                out[option] = str(exc)
    return out


def check_voice(voice: Voice, options: F5Options) -> None:
    """What loading ``voice`` checks, without a model (check-config, before a start)."""
    prepare_voice(voice, clip_limits(options), options.language)
