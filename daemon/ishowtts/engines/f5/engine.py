"""The ``f5`` engine: F5-TTS voice cloning with our sampler, warmed shape buckets, streaming."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import structlog
import torch
from pydantic import Field, ValidationInfo, field_validator

from ...confload import Section
from ..base import EngineBroken, EngineError, Progress, Voice, WeightsUnusable
from . import duration, loader, upstream
from .fastdit import FastDiT
from .graphs import GraphRunner, fetch, tf32_matmuls
from .sampler import (
    Job,
    Schedules,
    TeacherPlan,
    sample_eager,
    sample_guided_start_eager,
    sample_student_eager,
)
from .textfront import chunk, normalize
from .upstream import UpstreamModule
from .voices import (
    HOP,
    SAMPLE_RATE,
    ClipLimits,
    F5VoiceOptions,
    LoadedVoice,
    load_voice,
    prepare_voice,
)
from .warmer import Warmer

log = structlog.get_logger("ishowtts.engine.f5")

_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


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


def _pinyin(text: str) -> list[str]:
    """Tokens of ``text`` without leading spaces, as DMOSpeech 2's duration predictor reads."""
    tokens = upstream.to_pinyin_tokens([text.strip()])[0]
    while len(tokens) > 1 and tokens[0] == " ":
        tokens = tokens[1:]
    return tokens


class F5Engine:
    name = "f5"
    slow_start = True  # seconds to load and warm: a fallback, if any, speaks meanwhile
    sample_rate = SAMPLE_RATE
    Options = F5Options
    VoiceOptions = F5VoiceOptions

    def __init__(self, options: F5Options | Mapping[str, Any] | None = None) -> None:
        if not isinstance(options, F5Options):
            options = F5Options.model_validate(dict(options or {}))
        self.options = options
        self.voices: dict[str, LoadedVoice] = {}
        self.device = self._pick_device(options.device)
        self.dtype = self._pick_dtype(options.precision, self.device)
        self.cfm: UpstreamModule | None = None
        self.vocoder: UpstreamModule | None = None
        self.fast: FastDiT | None = None
        self.schedules: Schedules | None = None
        self.runners: dict[int, GraphRunner] = {}
        self.pool: Any = None  # the buckets' graphs share one memory pool (never run at once)
        self.warmer = Warmer(self)
        self.timings: dict[str, float] = {}
        self._mel_spec: torch.nn.Module | None = None
        self._vocab: dict[str, int] = {}
        self.student = loader.is_student(options.model)
        self.steps = options.steps or (4 if self.student else 16)
        self.predictor: duration.DurationPredictor | None = None
        # The teacher-guided start (DMOSpeech2 with teacher_steps): the teacher's DiT, guided.
        self.teacher: FastDiT | None = None
        self.teacher_schedules: Schedules | None = None

    # ---- set-up ----------------------------------------------------------------------

    @staticmethod
    def _pick_device(name: str) -> torch.device:
        if name == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dev = torch.device(name)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise EngineBroken("device cuda requested but CUDA is not available")
        return dev

    @staticmethod
    def _pick_dtype(precision: str, device: torch.device) -> torch.dtype:
        if precision == "auto":
            return torch.float16 if device.type == "cuda" else torch.float32
        return _DTYPES[precision]

    @property
    def _use_graphs(self) -> bool:
        return self.device.type == "cuda" and self.options.cuda_graphs

    def load(self, voices: Mapping[str, Voice], progress: Progress) -> None:
        o = self.options
        t0 = time.perf_counter()
        if self.device.type == "cuda" and o.compile_cache:
            # Read once; later starts reuse compiled kernels and autotuning. Triton's own cache
            # holds our kernels (convolution, RoPE), which run uncompiled too.
            cache = Path(o.compile_cache).expanduser()
            os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache))
            os.environ.setdefault("TRITON_CACHE_DIR", str(cache / "triton"))
        # The checkpoint first: when it cannot be had, say so (and let the fallback speak)
        # before spending seconds building the model.
        path = None
        if not o.random_weights:
            source = self._checkpoint(o)
            path = loader.resolve(source, None, "F5 checkpoint", "checkpoint", o.hub_cache)
        self._vocab = upstream.load_vocab(str(upstream.vocab_path(o.vocab)))
        with torch.device(self.device):  # initialise on the GPU: seconds faster than the CPU
            cfm = loader.build_cfm(o.model, o.arch, self._vocab)
        scale = 1.0
        if path is None:
            loader.randomise(cfm)
            progress("f5: random weights (benchmark only)")
        else:
            progress(f"f5: loading checkpoint {path}")
            scale = loader.load_weights(cfm, path, o.use_ema, self.student, model=o.model,
                                        arch=o.arch, vocab=o.vocab)  # fmt: skip
        _, _, MelSpec = upstream.classes()
        self._mel_spec = MelSpec(**loader.MEL)  # reference mels on the CPU, fp32
        self.cfm = cfm.eval().requires_grad_(False).to(self.device, self.dtype)
        vocoder = loader.load_vocoder(
            o.vocoder, o.hub_cache, loader.VOCOS_MEL_24KHZ if o.random_weights else None
        )
        self.vocoder = vocoder.eval().requires_grad_(False).to(self.device)
        self.fast = FastDiT(self.cfm.transformer, o.fused_conv, o.attention, fuse=self._fuse(o),
                            guided=not self.student, mel_scale=scale)  # fmt: skip
        self.schedules = Schedules(self.fast)
        if self.student and o.teacher_steps:
            self.teacher = self._load_teacher(path, scale, progress)
            self.teacher_schedules = Schedules(self.teacher)
        self.set_voices(voices)
        self.timings["load_s"] = time.perf_counter() - t0
        progress(
            f"f5: model ready on {self.device} ({str(self.dtype).removeprefix('torch.')}) "
            f"in {self.timings['load_s']:.1f} s, {len(self.voices)} voice(s)"
        )

    def _load_teacher(self, path: Path | None, scale: float, progress: Progress) -> FastDiT:
        """The teacher from the student's file (``guidance_model.real_unet.*``), as a guided
        FastDiT at the engine's device and precision (another full DiT in memory)."""
        o = self.options
        with torch.device(self.device):
            cfm = loader.build_cfm(o.model, o.arch, self._vocab)
        if path is None:
            loader.randomise(cfm, seed=1)  # not the student's weights
        else:
            progress(f"f5: loading the teacher from {path}")
            teacher_scale = loader.load_weights(cfm, path, teacher=True)
            if teacher_scale != scale:
                raise ValueError(f"{path}: teacher and student disagree on the mel scale")
        dit = cfm.transformer.eval().requires_grad_(False).to(self.device, self.dtype)
        return FastDiT(dit, o.fused_conv, o.attention, guided=True, mel_scale=scale,
                       fuse=self._fuse(o))  # fmt: skip

    def _teacher_plan(self, steps: int) -> TeacherPlan | None:
        if self.teacher_schedules is None:
            return None
        o = self.options
        return self.teacher_schedules.teacher(o.teacher_steps, steps, o.sway, o.teacher_eta,
                                              o.student_start_step)  # fmt: skip

    @staticmethod
    def _fuse(o: F5Options) -> frozenset[str] | None:
        return None if o.fused_step else frozenset()  # None: every fusion the device runs

    @staticmethod
    def _limits(o: F5Options) -> ClipLimits:
        return ClipLimits(o.min_ref_seconds, o.max_ref_seconds, target_rms=o.target_rms)

    @staticmethod
    def _checkpoint(o: F5Options) -> str:
        return o.checkpoint or loader.default_checkpoint(o.model)  # each config its own file

    @classmethod
    def check_files(cls, options: F5Options) -> dict[str, str]:
        """Model files that cannot be had: {option: why}. Local paths are checked by the
        options themselves; hub files only offline (online they are downloaded at start),
        where a file missing from the cache is a configuration problem, not a passing one."""
        if options.random_weights:
            return {}
        try:
            source = cls._checkpoint(options)
        except WeightsUnusable as exc:
            return {exc.option: str(exc)}
        # A file at hand (local, or in the hub cache) is judged from its index: wrong model,
        # vocab, a truncated download (checkpoint.py) are config errors found before a load.
        path = loader.cached(source, options.hub_cache)
        if path is not None:
            try:
                loader.check_checkpoint(path, options.model, options.arch, options.vocab,
                                        options.use_ema)  # fmt: skip
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

    @classmethod
    def check_voice(cls, voice: Voice, options: F5Options) -> None:
        """What loading ``voice`` checks, without a model (check-config, before a start)."""
        prepare_voice(voice, cls._limits(options), options.language)

    def set_voices(self, voices: Mapping[str, Voice]) -> None:
        if self._mel_spec is None:
            raise EngineError("load() first")
        o = self.options
        limits = self._limits(o)
        min_frames = round(o.min_seconds * SAMPLE_RATE / HOP)
        loaded = {}
        for name, voice in voices.items():
            v = load_voice(voice, self._mel_spec, self.device, limits, o.language, min_frames,
                           o.duration)  # fmt: skip
            if self.teacher is not None and v.steps is not None and v.steps <= o.student_start_step:
                raise ValueError(
                    f"voice {name!r}: steps {v.steps} leaves the student no step after the "
                    f"teacher-guided start (student_start_step {o.student_start_step}); use "
                    f"steps > {o.student_start_step}"
                )
            if v.frames + min_frames > o.max_frames:
                raise ValueError(
                    f"voice {name!r}: reference {v.path} leaves no room under max_frames "
                    f"({v.frames} + {min_frames} > {o.max_frames})"
                )
            loaded[name] = v
        if any(v.duration == "predictor" for v in loaded.values()) and self.predictor is None:
            self.predictor = self._load_predictor()
        self.voices = loaded  # all or nothing: a bad voice keeps the old set
        if not self.warmer.done:  # still warming in the background: it takes the new set
            self.warmer.drop_stale()
        elif self.runners:  # warmed already (a reload): a shorter clip or more steps need graphs
            try:
                self.warmer.capture(lambda line: log.info("f5_reload_warmup", step=line))
            except Exception as exc:  # the voices work without graphs (eagerly): keep them
                log.warning("f5_reload_capture_failed", error=repr(exc)[:500])

    def _load_predictor(self) -> duration.DurationPredictor:
        o = self.options
        if o.random_weights:
            torch.manual_seed(0)
            return duration.DurationPredictor().eval().requires_grad_(False).to(self.device)
        path = loader.resolve(o.duration_predictor, None, "duration predictor",
                              "duration_predictor", o.hub_cache)  # fmt: skip
        return duration.read(path, self.device)

    # ---- buckets and warm-up ---------------------------------------------------------

    def bucket(self, frames: int) -> int:
        step = self.options.bucket_frames
        return min(-(-frames // step) * step, max(self.options.max_frames, frames))

    def buckets(self) -> list[int]:
        """Every bucket a chunk of a loaded voice can land in."""
        o = self.options
        min_frames = round(o.min_seconds * SAMPLE_RATE / HOP)
        if not self.voices:
            return []
        lo = self.bucket(min(v.frames for v in self.voices.values()) + max(min_frames, 1))
        top = self.bucket(o.max_frames)
        return sorted({*range(lo, top, o.bucket_frames), top})

    def _steps_used(self) -> list[int]:
        return sorted({self.steps} | {v.steps for v in self.voices.values() if v.steps})

    def warmup(self, progress: Progress) -> None:
        """Ready to speak: with ``background_warmup`` once the eager path is warm (the rest
        follows in ``background_step``), else once every bucket's CUDA graphs are captured."""
        if self.fast is None or self.schedules is None:
            raise EngineError("load() first")
        t0 = time.perf_counter()
        for steps in self._steps_used():
            if self.student:
                self.schedules.student(steps, self.options.sway)
                self._teacher_plan(steps)
            else:
                self.schedules.get(steps, self.options.sway)
        self.warmer.ready(progress, self.options.background_warmup)
        self.timings["warmup_s"] = time.perf_counter() - t0
        later = "" if self.warmer.done else "; compile and CUDA graphs follow between lines"
        progress(f"f5 warm-up done in {self.timings['warmup_s']:.1f} s{later}")

    def background_step(self) -> float | None:
        """One piece of the deferred warm-up (the synth worker calls it, in the engine's
        thread, only while no line waits): None when nothing is left, else the seconds after
        which to call again."""
        return self.warmer.step()

    # ---- synthesis -------------------------------------------------------------------

    def _tokens(self, text: str) -> torch.Tensor:
        chars = upstream.to_pinyin_tokens([text])[0]
        return torch.tensor([self._vocab.get(c, 0) for c in chars], dtype=torch.long)

    def new_frames(self, voice: LoadedVoice, text: str, speed: float = 1.0) -> int:
        """Frames of new speech for a chunk: the voice's speaking rate, or the learned
        predictor (searched around the reference's token rate, as DMOSpeech 2 does); ``speed``
        times faster (fewer frames for the same text: the model speaks it faster)."""
        rate = voice.rate.frames(text, voice.speed * speed)
        if voice.duration != "predictor" or self.predictor is None:
            return rate
        ref = _pinyin(voice.ref_text)
        new = _pinyin(text)
        ids = torch.tensor([self._vocab.get(c, 0) for c in [*ref, " ", *new]], dtype=torch.long)
        estimate = int(voice.frames / max(len(ref), 1) * len(new) / voice.speed)
        frames = self.predictor.frames(ids, voice.mel, estimate)
        return rate if frames is None else math.ceil(frames / speed)

    def chunk_audio(
        self, voice: LoadedVoice, text: str, steps: int | None = None, speed: float = 1.0
    ) -> np.ndarray:
        """Audio of one chunk of normalised text (mono float32); NaN/inf → EngineError."""
        o = self.options
        gen = self.new_frames(voice, text, speed)
        frames = min(voice.frames + gen, o.max_frames)
        if self._use_graphs and o.quantise_duration:
            frames = self.bucket(frames)
        steps = steps or voice.steps or self.steps
        job = Job(voice.mel, self._tokens(voice.ref_text + text), frames, seed=o.seed)
        return self.render(job, steps)

    def render(self, job: Job, steps: int) -> np.ndarray:
        """Audio of one job's new frames (mono float32): its bucket's CUDA graphs if they fit,
        else the eager sampler and vocoder. NaN/inf → EngineError; out of GPU memory →
        EngineBroken."""
        o = self.options
        try:
            with self.warmer.pause.speaking():  # a compile in the background steps aside
                mel, wav = self._sample(job, steps)
                if wav is None:
                    assert self.vocoder is not None
                    with torch.inference_mode(), tf32_matmuls(o.vocoder_tf32):
                        wav = self.vocoder.decode(mel.T[None].float())[0]
                # One wait for the GPU: both checks run there, beside the copy of the audio.
                audio, mel_ok, audio_ok = fetch(wav, mel)
        except torch.cuda.OutOfMemoryError as exc:
            raise EngineBroken(f"out of GPU memory: {exc}") from None
        if not mel_ok:
            raise EngineError("the model produced NaN/inf; utterance dropped")
        if not audio_ok:
            raise EngineError("the vocoder produced NaN/inf; utterance dropped")
        return audio

    def _sample(self, job: Job, steps: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(new mel, its audio if the bucket's graphs made it too)."""
        assert self.fast is not None and self.schedules is not None
        o = self.options
        nref = job.cond.shape[0]
        runner = self.runners.get(self.bucket(job.frames)) if self._use_graphs else None
        plan = self._teacher_plan(steps)
        if runner is not None and runner.fits(steps, plan):
            return runner.run([job], steps, o.cfg_strength, o.sway, self.schedules, plan)[0]
        if plan is not None:
            assert self.teacher is not None
            full = sample_guided_start_eager(self.fast, self.teacher, [job], steps, plan,
                                             o.cfg_strength, o.sway, self.schedules)  # fmt: skip
        elif self.student:
            full = sample_student_eager(self.fast, [job], steps, o.sway, self.schedules)
        else:
            full = sample_eager(self.fast, [job], steps, o.cfg_strength, o.sway, self.schedules)
        return full[0][nref:], None

    def plan(self, text: str, voice: LoadedVoice, speed: float = 1.0) -> list[str]:
        """Normalised chunks of ``text`` for ``voice`` at ``speed``, first chunk short."""
        o = self.options
        norm = normalize(text, self.options.emoji)
        if not norm:
            return []

        def frames(s: str) -> int:
            return voice.rate.frames(s, voice.speed * speed)

        first = round(o.first_chunk_seconds * SAMPLE_RATE / HOP)
        room = o.max_frames - voice.frames
        return chunk(norm, frames, min(first, room), room)

    def synthesize(self, text: str, voice: str, speed: float = 1.0) -> Iterator[np.ndarray]:
        if voice not in self.voices:
            raise EngineError(f"unknown voice {voice!r}; voices: {', '.join(self.voices)}")
        v = self.voices[voice]
        xf = round(self.options.cross_fade * SAMPLE_RATE)
        tail: np.ndarray | None = None
        for piece in self.plan(text, v, speed):
            audio = self.chunk_audio(v, piece, speed=speed)
            if tail is not None and xf:
                n = min(xf, len(tail), len(audio))
                ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
                head = tail[len(tail) - n :] * (1 - ramp) + audio[:n] * ramp
                audio = np.concatenate([tail[: len(tail) - n], head, audio[n:]])
            elif tail is not None:
                audio = np.concatenate([tail, audio])
            keep = min(xf, len(audio))
            if len(audio) > keep:
                yield np.ascontiguousarray(audio[: len(audio) - keep], dtype=np.float32)
            tail = audio[len(audio) - keep :]
        if tail is not None and len(tail):
            yield np.ascontiguousarray(tail, dtype=np.float32)

    def describe(self) -> Mapping[str, Any]:
        o = self.options
        return {
            "engine": "f5",
            "model": o.model,
            "checkpoint": "random" if o.random_weights else o.checkpoint or "published",
            "device": str(self.device),
            "precision": str(self.dtype).removeprefix("torch."),
            "steps": self.steps,
            "guidance": not self.student,
            "teacher_steps": self.options.teacher_steps if self.teacher is not None else 0,
            "student_start_step": self.options.student_start_step
            if self.teacher is not None
            else 0,
            "cuda_graphs": self._use_graphs,
            "compiled": self._use_graphs and o.compile,
            "buckets": sorted(self.runners),
            "warm": self.warmer.done,  # every bucket's graphs captured (else still warming)
            "voices": sorted(self.voices),
            "sample_rate": self.sample_rate,
            **{k: round(v, 2) for k, v in self.timings.items()},
        }

    def close(self) -> None:
        self.warmer.close()
        self.runners.clear()
        self.pool = None
        self.cfm = self.vocoder = self.fast = self.teacher = None
        self.teacher_schedules = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
