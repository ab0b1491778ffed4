"""The ``f5`` engine: F5-TTS voice cloning with our sampler, warmed shape buckets, streaming."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch

from ..base import EngineBroken, EngineError, Progress, Voice
from . import duration, loader, upstream
from .fastdit import FastDiT
from .graphs import GraphRunner, fetch, tf32_matmuls
from .options import (
    F5Options,
    check_files,
    check_voice,
    checkpoint_source,
    clip_limits,
    fused_passes,
)
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
    F5VoiceOptions,
    LoadedVoice,
    load_voice,
)
from .warmer import Warmer, bucket

log = structlog.get_logger("ishowtts.engine.f5")

_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


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
            source = checkpoint_source(o)
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
            scale = loader.load_weights(
                cfm, path, o.use_ema, self.student, model=o.model, arch=o.arch, vocab=o.vocab
            )
        _, _, MelSpec = upstream.classes()
        self._mel_spec = MelSpec(**loader.MEL)  # reference mels on the CPU, fp32
        self.cfm = cfm.eval().requires_grad_(False).to(self.device, self.dtype)
        vocoder = loader.load_vocoder(
            o.vocoder,
            o.hub_cache,
            loader.VOCOS_MEL_24KHZ if o.random_weights else None,
            device=self.device,
        )
        self.vocoder = vocoder.eval().requires_grad_(False).to(self.device)
        self.fast = FastDiT(
            self.cfm.transformer,
            o.fused_conv,
            o.attention,
            fuse=fused_passes(o),
            guided=not self.student,
            mel_scale=scale,
        )
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
        return FastDiT(
            dit, o.fused_conv, o.attention, guided=True, mel_scale=scale, fuse=fused_passes(o)
        )

    def _teacher_plan(self, steps: int) -> TeacherPlan | None:
        if self.teacher_schedules is None:
            return None
        o = self.options
        return self.teacher_schedules.teacher(
            o.teacher_steps, steps, o.sway, o.teacher_eta, o.student_start_step
        )

    @staticmethod
    def check_files(options: F5Options) -> dict[str, str]:
        """Model files that cannot be had: {option: why} (``options.check_files``)."""
        return check_files(options)

    @staticmethod
    def check_voice(voice: Voice, options: F5Options) -> None:
        """What loading ``voice`` checks, without a model (``options.check_voice``)."""
        check_voice(voice, options)

    def set_voices(self, voices: Mapping[str, Voice]) -> None:
        if self._mel_spec is None:
            raise EngineError("load() first")
        o = self.options
        limits = clip_limits(o)
        min_frames = round(o.min_seconds * SAMPLE_RATE / HOP)
        loaded = {}
        for name, voice in voices.items():
            v = load_voice(
                voice, self._mel_spec, self.device, limits, o.language, min_frames, o.duration
            )
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
        path = loader.resolve(
            o.duration_predictor, None, "duration predictor", "duration_predictor", o.hub_cache
        )
        return duration.read(path, self.device)

    # ---- buckets and warm-up (warmer.py) ---------------------------------------------

    def bucket(self, frames: int) -> int:
        """The shape bucket (its CUDA graphs) a chunk of ``frames`` lands in."""
        return bucket(self.options, frames)

    def buckets(self) -> list[int]:
        """Every bucket a chunk of a loaded voice can land in."""
        return self.warmer.buckets()

    def warmup(self, progress: Progress) -> None:
        self.warmer.warmup(progress)

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
            full = sample_guided_start_eager(
                self.fast, self.teacher, [job], steps, plan, o.cfg_strength, o.sway, self.schedules
            )
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
