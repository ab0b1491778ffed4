"""The samplers as CUDA graphs: ``GraphRunner`` pads a request to a shape bucket and replays
one captured step ``steps`` times, then the vocoder over a window of the bucket, inverse STFT
included. Padding is masked out of the attention keys and the convolution, which is the same
mathematics as the unpadded sequence; ``sampler``'s eager samplers are the reference.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .fastdit import FastDiT
from .rope import rope_tables
from .sampler import HOP, Job, Schedules, TeacherPlan, draw_noise, noise_for
from .upstream import UpstreamModule

# Frames of reference the vocoder sees before the new ones: more than its receptive field
# (Vocos: a 7-tap embedding and eight 7-tap ConvNeXt blocks, 27 frames each side; the ISTFT
# overlap-adds 4 frames), so the new audio is what vocoding the whole bucket gives.
VOCODE_CONTEXT = 32


def vocode_window(nref: int, frames: int, n: int, width: int) -> int | None:
    """First frame of the vocoder's ``width``-frame window for a job whose new frames are
    ``[nref, frames)`` in a bucket of ``n``: at least ``VOCODE_CONTEXT`` frames before the
    new ones (or from 0) and as many after (or to ``n``); None when no window of that width
    has both (a reference shorter than the runner was made for)."""
    start = max(0, min(nref - VOCODE_CONTEXT, n - width))
    if start + width < min(frames + VOCODE_CONTEXT, n):
        return None
    return start


def ola_istft(spec: Tensor, n_fft: int, hop: int, window: Tensor, padding: str) -> Tensor:
    """Inverse STFT by overlap-add, ``spec [B, n_fft/2+1, T]`` complex → ``[B, L]``: what
    Vocos' ISTFT computes for its ``padding`` ("center": ``torch.istft(center=True)``;
    "same": trimmed by ``(n_fft - hop)/2``), without the host-side envelope check that keeps
    ``torch.istft`` out of a CUDA graph (the trimmed envelope of a Hann window at Vocos' hop
    is never near zero)."""
    frames = torch.fft.irfft(spec, n_fft, dim=1) * window[None, :, None]
    t = spec.shape[-1]
    size = (t - 1) * hop + n_fft
    y = F.fold(frames, (1, size), (1, n_fft), stride=(1, hop))[:, 0, 0]
    squares = window.square()[None, :, None].expand(1, n_fft, t)
    envelope = F.fold(squares, (1, size), (1, n_fft), stride=(1, hop))[0, 0, 0]
    start = n_fft // 2 if padding == "center" else (n_fft - hop) // 2
    length = hop * (t - 1) if padding == "center" else size - 2 * start
    return y[:, start : start + length] / envelope[start : start + length]


_SIDE: dict[int, torch.cuda.Stream] = {}


def _side_stream() -> torch.cuda.Stream:
    # One warm-up stream for all captures: memory cached on a stream serves only that stream.
    dev = torch.cuda.current_device()
    if dev not in _SIDE:
        _SIDE[dev] = torch.cuda.Stream()
    return _SIDE[dev]


SILENCE = math.log(1e-5)  # log-mel floor: what the vocoder hears as silence

# A staged request row: reference frames, frames, text tokens, vocoder window start; tokens.
META = 4


@contextmanager
def tf32_matmuls(on: bool) -> Iterator[None]:
    """fp32 matmuls on TF32 tensor cores inside (CUDA; cuDNN's convolutions already are)."""
    flags = torch.backends.cuda.matmul
    before = flags.allow_tf32
    flags.allow_tf32 = on
    try:
        yield
    finally:
        flags.allow_tf32 = before


def fetch(audio: Tensor, mel: Tensor) -> tuple[np.ndarray, bool, bool]:
    """``audio`` (fp32) on the host, and whether ``mel`` and ``audio`` are all finite, after
    one wait for the GPU: the checks run there and the copy lands in pinned memory (a
    pageable copy waits, then copies again on the host)."""
    finite = torch.stack((torch.isfinite(mel).all(), torch.isfinite(audio).all()))
    if audio.device.type != "cuda":
        mel_ok, audio_ok = finite.tolist()
        return audio.float().numpy(), mel_ok, audio_ok
    host = torch.empty(audio.shape, dtype=torch.float32, pin_memory=True)
    flags = torch.empty(2, dtype=torch.bool, pin_memory=True)
    host.copy_(audio, non_blocking=True)
    flags.copy_(finite, non_blocking=True)
    torch.cuda.current_stream(audio.device).synchronize()
    mel_ok, audio_ok = flags.tolist()
    # A copy out of the pinned block: queued audio must not pin memory while it waits.
    return host.numpy().copy(), mel_ok, audio_ok


class GraphRunner:
    """CUDA graphs for one (bucket length, batch): the per-request preparation (text embedding,
    condition projection), one Euler step (replayed ``steps`` times) and, optionally, the
    vocoder over the whole bucket. Static buffers are filled before the first replay. A
    student's runner given a ``teacher`` also captures the teacher's preparation and one
    teacher step (replayed once per teacher evaluation) for the teacher-guided start.

    The text is padded with filler tokens to the bucket length and embedded over the bucket:
    filler positions are masked to zero inside upstream's text embedding, so the frames that
    matter see exactly what an unpadded request sees.

    A request launches few kernels before its first graph, because after an idle wait the CPU
    is slow to start: on the H200's host, 17 small launches took 0.45-0.8 ms instead of 0.15.
    Its sizes and tokens go in one host-to-device copy that the prepare graph unpacks, the
    reference mel is copied only when another voice's comes, the noise is drawn in place and
    the schedule tables are copied only when they change (the GPU then starts ~0.3 ms sooner
    after idle; part of the delay is a fixed cost of the first calls, not per launch).
    """

    def __init__(self, fast: FastDiT, n: int, batch: int, max_steps: int,
                 pool: Any = None, vocoder: UpstreamModule | None = None,
                 masked: bool = True, teacher: FastDiT | None = None, teacher_evals: int = 0,
                 teacher_draws: int = 0, min_ref: int = 0,
                 vocoder_tf32: bool = False) -> None:  # fmt: skip
        """``teacher``: a student runner that can also run the teacher-guided start (two more
        graphs: the teacher's preparation and one teacher step), for plans of at most
        ``teacher_evals`` evaluations and ``teacher_draws`` noise draws. ``min_ref``: the
        shortest reference it will see (frames); the vocoder then runs over a window of the
        bucket that leaves out the rest of the reference (see ``vocode_window``).
        ``vocoder_tf32``: the vocoder graph's fp32 matmuls on TF32 tensor cores."""
        dev, mel, d = fast.device, fast.mel_dim, fast.dim
        self.fast, self.n, self.batch, self.max_steps = fast, n, batch, max_steps
        self.vocoder = vocoder
        self.vocoder_tf32 = vocoder_tf32
        # Unmasked: every job fills the bucket exactly (durations quantised to the bucket grid),
        # so attention runs without a mask (a faster kernel) and nothing needs zeroing.
        self.masked = masked
        self.audio: Tensor | None = None  # the vocode graph's output
        # The vocoder's window: the new frames and VOCODE_CONTEXT frames of reference before
        # them; where it starts is set per request.
        self.min_ref = min_ref
        self.vwidth = min(n, n - min_ref + VOCODE_CONTEXT)
        self.vstart = torch.zeros(batch, 1, dtype=torch.long, device=fast.device)
        self.vframes = torch.arange(self.vwidth, device=fast.device)
        self.vocode_error = ""
        # A student draws fresh noise at every step: one slab per step, filled before replay.
        self.student = not fast.guided
        if teacher is not None and (not self.student or not teacher.guided or teacher_evals < 2
                                    or max_steps < 2):  # fmt: skip
            raise ValueError("a teacher-guided start needs a student, a guided teacher, >= 2 "
                             "teacher evaluations and >= 2 student steps")  # fmt: skip
        self.teacher = teacher
        self.teacher_evals = teacher_evals
        # The teacher's draws sit after the student's slabs (at least one: index always valid).
        self.teacher_draws = max(teacher_draws, 1) if teacher is not None else 0
        self.x = torch.zeros(batch, n, mel, device=dev)
        slabs = (max_steps + self.teacher_draws,) if self.student else ()
        self.noise = torch.zeros(*slabs, batch, n, mel, device=dev)
        self.cond = torch.zeros(batch, n, mel, device=dev)
        self.ref = torch.zeros(batch, n, dtype=torch.bool, device=dev)  # reference frames
        self.tokens = torch.full((batch, n), -1, dtype=torch.long, device=dev)
        self.pre = torch.zeros((1 if self.student else 2) * batch, n, d, device=dev,
                               dtype=fast.dtype)  # fmt: skip
        self.mask = torch.ones(batch, n, dtype=torch.bool, device=dev)
        self.lengths = torch.full((batch,), n, dtype=torch.long, device=dev)
        self.cos, self.sin = rope_tables(n, fast.dim_head, dev)
        self.mods = torch.zeros(max_steps, fast.depth, 6, d, device=dev, dtype=fast.dtype)
        self.fmods = torch.zeros(max_steps, 2, d, device=dev, dtype=fast.dtype)
        self.dt = torch.zeros(max_steps, device=dev)  # Euler: step sizes; student: step times
        self.idx = torch.zeros(1, dtype=torch.long, device=dev)
        self.cfg: Tensor | None = None if self.student else torch.zeros((), device=dev)
        self.graphs: dict[str, torch.cuda.CUDAGraph] = {}
        self.pool = pool
        # A request as staged on the host (rows: META header, then tokens), its copy on the
        # device that ``_unstage`` reads, and the reference mel as given. The header starts
        # as the buffers above do (all frames, no reference, no tokens): capture sees that.
        cuda = dev.type == "cuda"
        self.host = torch.zeros(batch, META + n, dtype=torch.long, pin_memory=cuda)
        self.host[:, 1] = n
        self.staged = torch.empty_like(self.host, device=dev).copy_(self.host)
        self._sent = torch.cuda.Event() if cuda else None  # the last staging copy
        self.cond_in = torch.zeros(batch, n, mel, device=dev)
        self._cond_of: list[Tensor | None] = [None] * batch  # whose mel each row holds
        self.positions = torch.arange(n, device=dev)
        self._loaded: tuple[Any, float, TeacherPlan | None] | None = None  # tables, cfg, plan
        if teacher is not None:  # the teacher's own tables, like the student's above
            e, td = teacher_evals, teacher.dim
            self.tpre = torch.zeros(2 * batch, n, td, device=dev, dtype=teacher.dtype)
            self.tmods = torch.zeros(e, teacher.depth, 6, td, device=dev, dtype=teacher.dtype)
            self.tfmods = torch.zeros(e, 2, td, device=dev, dtype=teacher.dtype)
            self.tdt = torch.zeros(e, device=dev)
            self.tcoef = torch.zeros(e, device=dev)
            self.tslab = torch.full((e,), max_steps, dtype=torch.long, device=dev)
            self.tidx = torch.zeros(1, dtype=torch.long, device=dev)
            self.tstart = torch.ones(1, dtype=torch.long, device=dev)  # the student's first step
            self.tcfg = torch.zeros((), device=dev)

    def _unstage(self) -> None:
        """The staged request as the graphs read it (masks, lengths, padded tokens, the
        vocoder's window, the condition); part of the prepare graph."""
        head, pos = self.staged, self.positions
        self.ref.copy_(pos < head[:, :1])
        self.mask.copy_(pos < head[:, 1:2])
        self.lengths.copy_(head[:, 1])
        self.tokens.copy_(torch.where(pos < head[:, 2:3], head[:, META:], -1))
        self.vstart.copy_(head[:, 3:4])
        cond = torch.where(self.ref[..., None], self.cond_in, 0.0)
        self.cond.copy_(cond / self.fast.mel_scale)

    def _prepare(self) -> None:
        self._unstage()
        self.pre.copy_(self.fast.prepare_padded(self.cond, self.tokens, self.lengths))
        if self.student:  # the first step is at t = 0: the estimate it mixes in is unused
            self.x.zero_()
        else:
            self.x.copy_(self.noise * self.mask[..., None] if self.masked else self.noise)
        self.idx.zero_()

    def _teacher_prepare(self) -> None:
        """After ``_prepare``: the teacher's condition and text, its starting noise (draw 0),
        and the student's step counter moved to the step where it takes over."""
        assert self.teacher is not None
        self.tpre.copy_(self.teacher.prepare_padded(self.cond, self.tokens, self.lengths))
        start = self.noise[0]
        self.x.copy_(start * self.mask[..., None] if self.masked else start)
        self.tidx.zero_()
        self.idx.copy_(self.tstart)

    def _teacher_step(self) -> None:
        assert self.teacher is not None
        i = self.tidx
        mods = self.tmods.index_select(0, i)[0]
        fmods = self.tfmods.index_select(0, i)[0]
        mask = self.mask if self.masked else None
        v = self.teacher.velocity(self.x, self.tpre, mods, fmods, self.cos, self.sin, mask,
                                  self.tcfg)  # fmt: skip
        self.x.add_(self.tdt.index_select(0, i) * v)
        draw = self.noise.index_select(0, self.tslab.index_select(0, i))[0]
        self.x.add_(self.tcoef.index_select(0, i) * draw)
        self.tidx.add_(1)

    def _step(self) -> None:
        i = self.idx
        mods = self.mods.index_select(0, i)[0]
        fmods = self.fmods.index_select(0, i)[0]
        mask = self.mask if self.masked else None
        if self.student:
            t = self.dt.index_select(0, i)
            phi = (1 - t) * self.noise.index_select(0, i)[0] + t * self.x
            v = self.fast.velocity(phi, self.pre, mods, fmods, self.cos, self.sin, mask, None)
            self.x.copy_(phi + (1 - t) * v)
        else:
            v = self.fast.velocity(self.x, self.pre, mods, fmods, self.cos, self.sin, mask,
                                   self.cfg)  # fmt: skip
            self.x.add_(self.dt.index_select(0, i) * v)
        self.idx.add_(1)

    def _vocode(self) -> None:
        """Vocos over the bucket's window, its inverse STFT included (``ola_istft``: no host
        check, so it stays in the graph)."""
        assert self.vocoder is not None
        # The whole bucket: reference mel, new mel, then silence; cut to the new part after.
        mel = torch.where(self.ref[..., None], self.cond, self.x)
        if self.fast.mel_scale != 1.0:
            mel = mel * self.fast.mel_scale
        if self.masked:
            mel = torch.where(self.mask[..., None], mel, SILENCE)
        if self.vwidth < self.n:
            frames = (self.vstart + self.vframes)[..., None].expand(-1, -1, mel.shape[-1])
            mel = torch.gather(mel, 1, frames)
        head = self.vocoder.head
        spec = head.out(self.vocoder.backbone(mel.transpose(1, 2))).transpose(1, 2).float()
        mag, phase = spec.chunk(2, dim=1)
        istft = head.istft
        audio = ola_istft(torch.polar(torch.exp(mag).clip(max=1e2), phase), istft.n_fft,
                          istft.hop_length, istft.window, istft.padding)  # fmt: skip
        if self.audio is None:
            self.audio = audio
        else:
            self.audio.copy_(audio)

    def _capture(self, name: str, fn: Callable[[], None]) -> None:
        stream = _side_stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):  # compile, autotune, allocate outside the graph
                fn()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            fn()
        self.graphs[name] = graph

    def _vocos(self) -> bool:
        head = getattr(self.vocoder, "head", None)
        return hasattr(head, "out") and hasattr(getattr(head, "istft", None), "window")

    @torch.no_grad()
    def exercise(self) -> None:
        """What ``capture`` runs, once each, outside any graph and on the current stream:
        compiles what they call (a thread of its own can do this while another speaks)."""
        self._prepare()
        self._step()
        if self._vocos():
            with contextlib.suppress(RuntimeError), tf32_matmuls(self.vocoder_tf32):
                self._vocode()  # if it fails, capture finds out and vocodes eagerly
        if self.teacher is not None:
            self._teacher_prepare()
            self._teacher_step()

    @torch.no_grad()
    def capture(self) -> None:
        self._capture("prepare", self._prepare)
        self._capture("step", self._step)
        if self._vocos():
            try:
                with tf32_matmuls(self.vocoder_tf32):
                    self._capture("vocode", self._vocode)
            except RuntimeError as exc:  # the vocoder then runs eagerly, after the graphs
                self.graphs.pop("vocode", None)
                self.vocode_error = repr(exc)[:300]
        if self.teacher is not None:
            self._capture("teacher_prepare", self._teacher_prepare)
            self._capture("teacher_step", self._teacher_step)

    def fits(self, steps: int, plan: TeacherPlan | None) -> bool:
        """Whether ``run`` can take this step count (and teacher plan)."""
        if steps > self.max_steps:
            return False
        if plan is None:
            return True
        return (
            self.teacher is not None
            and steps == plan.steps
            and plan.evals <= self.teacher_evals
            and plan.draws <= self.teacher_draws
        )

    def _stage(self, jobs: list[Job], windows: list[int | None]) -> None:
        """Each job's sizes, tokens and vocoder window into the staging rows, sent in one
        copy; its reference mel unless that row holds it already (a job's ``cond`` is never
        written, so the same tensor means the same mel)."""
        rows = []
        for j in jobs:
            nref, tokens = j.cond.shape[0], j.tokens.cpu().numpy()
            if (
                j.frames > self.n
                or nref >= j.frames
                or len(tokens) > self.n
                or (not self.masked and j.frames != self.n)
            ):
                raise ValueError(f"job of {j.frames} frames (ref {nref}) does not fit {self.n}")
            rows.append((nref, tokens))
        if self._sent is not None:
            self._sent.synchronize()  # the last request's copy has left the pinned rows
        host = self.host.numpy()
        for i, (j, (nref, tokens), start) in enumerate(zip(jobs, rows, windows, strict=True)):
            host[i, :META] = (nref, j.frames, len(tokens), start or 0)
            host[i, META : META + len(tokens)] = tokens
            if self._cond_of[i] is not j.cond:
                self.cond_in[i, :nref].copy_(j.cond)
                self._cond_of[i] = j.cond
        self.staged.copy_(self.host, non_blocking=True)
        if self._sent is not None:
            self._sent.record()

    def _load_tables(self, steps: int, cfg: float, sway: float | None, schedules: Schedules,
                     teacher: TeacherPlan | None) -> None:  # fmt: skip
        """The schedule's tables (and the teacher plan's), unless the last request loaded
        these very ones: ``Schedules`` hands out the same tensors for the same key."""
        tables = schedules.student(steps, sway) if self.student else schedules.get(steps, sway)
        last = self._loaded
        if last is not None and last[0] is tables and last[1] == cfg and last[2] is teacher:
            return
        dt, mods, fmods = tables
        if self.cfg is not None:
            self.cfg.fill_(cfg)
        self.mods[:steps].copy_(mods)
        self.fmods[:steps].copy_(fmods)
        self.dt[:steps].copy_(dt)
        if teacher is not None:
            e = teacher.evals
            self.tmods[:e].copy_(teacher.mods)
            self.tfmods[:e].copy_(teacher.fmods)
            self.tdt[:e].copy_(teacher.dt)
            self.tcoef[:e].copy_(teacher.coef)
            self.tslab[:e].copy_(teacher.slab + self.max_steps)
            self.tstart.fill_(teacher.start)
            self.tcfg.fill_(cfg)
        self._loaded = (tables, cfg, teacher)

    @torch.no_grad()
    def run(self, jobs: list[Job], steps: int, cfg: float, sway: float | None,
            schedules: Schedules,
            teacher: TeacherPlan | None = None) -> list[tuple[Tensor, Tensor | None]]:  # fmt: skip
        """For each job: (new mel ``[frames - n_ref, mel]``, new audio or None). ``teacher``:
        run the teacher-guided start first (``sample_guided_start_eager``)."""
        if len(jobs) != self.batch or not self.fits(steps, teacher):
            raise ValueError("job batch, step count or teacher plan does not fit this graph")
        windows = [vocode_window(j.cond.shape[0], j.frames, self.n, self.vwidth) for j in jobs]
        self._stage(jobs, windows)
        draws = teacher.draws if teacher is not None else 0
        for i, j in enumerate(jobs):
            if not self.student:
                draw_noise(self.noise[i, : j.frames], j)
            elif not draws:
                draw_noise(self.noise[:steps, i, : j.frames], j)
            else:  # the student's draws, then the teacher's after all the student's slabs
                noise = noise_for(j, self.fast.mel_dim, self.fast.device, steps + draws)
                self.noise[:steps, i, : j.frames] = noise[:steps]
                self.noise[self.max_steps : self.max_steps + draws, i, : j.frames] = noise[steps:]
        self._load_tables(steps, cfg, sway, schedules, teacher)
        self.graphs["prepare"].replay()
        first = 0
        if teacher is not None:
            self.graphs["teacher_prepare"].replay()
            for _ in range(teacher.evals):
                self.graphs["teacher_step"].replay()
            first = teacher.start
        step = self.graphs["step"]
        for _ in range(first, steps):
            step.replay()
        starts = [w for w in windows if w is not None]
        audio_all = None
        if "vocode" in self.graphs and len(starts) == len(jobs):  # else the caller vocodes
            self.graphs["vocode"].replay()
            audio_all = self.audio
        out = []
        for i, j in enumerate(jobs):
            nref = j.cond.shape[0]
            new = self.x[i, nref : j.frames] * self.fast.mel_scale  # a copy, even at 1.0
            audio = None
            if audio_all is not None:  # a copy: the graph's buffer is reused by the next run
                audio = audio_all[i, (nref - starts[i]) * HOP : (j.frames - starts[i]) * HOP]
                audio = audio.clone()
            out.append((new, audio))
        return out
