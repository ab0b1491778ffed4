"""Fixed-step sampling of the flow: Euler with packed classifier-free guidance (F5), or the
few-step student sampler of DMOSpeech 2 (no guidance; see ``sample_student_eager``), optionally
after its teacher-guided start (a guided F5 teacher first; ``sample_guided_start_eager``).

Two runners share one step function (``FastDiT.velocity``):
- ``sample_eager``: any shape, any device (CPU tests, fidelity against upstream);
- ``GraphRunner``: CUDA only; the sequence is padded to a shape bucket and one step is a CUDA
  graph (captured once per bucket), replayed ``steps`` times. Padding is masked out of the
  attention keys and the convolution, which is the same mathematics as the unpadded sequence.
The state is kept in fp32 whatever the model precision; the model sees it cast.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .fastdit import FastDiT, rope_tables, sway_map, timesteps
from .upstream import UpstreamModule

HOP = 256


@dataclass
class Job:
    """One utterance chunk to sample: reference mel ``[n_ref, mel]`` (fp32, on the device),
    text token ids ``[nt]`` (reference transcript + new text), total frames (reference + new)."""

    cond: Tensor
    tokens: Tensor
    frames: int
    noise: Tensor | None = None  # [frames, mel] fp32; drawn from ``seed`` when None
    seed: int | None = None


class Schedules:
    """Step schedules and their modulation tables, cached by (steps, sway)."""

    def __init__(self, fast: FastDiT) -> None:
        self.fast = fast
        self._cache: dict[tuple[int, float | None], tuple[Tensor, Tensor, Tensor]] = {}
        self._teacher: dict[tuple[int, int, float | None, float, int], TeacherPlan] = {}

    def teacher(self, teacher_steps: int, steps: int, sway: float | None, eta: float,
                start: int = 1) -> TeacherPlan:  # fmt: skip
        """The teacher-guided start before a ``steps``-step student taking over at its step
        ``start``, with this object's model (the teacher) giving the modulation tables; see
        ``teacher_plan``."""
        key = (teacher_steps, steps, sway, eta, start)
        if key not in self._teacher:
            t, dt, coef, slab = teacher_plan(teacher_steps, steps, sway, eta, start)
            mods, fmods = self.fast.modulation(t)
            dev = self.fast.device
            self._teacher[key] = TeacherPlan(t.to(dev), dt.to(dev), coef.to(dev), slab.to(dev),
                                             int(slab.max()) + 1 if eta > 0 else 0, mods, fmods,
                                             steps, start)  # fmt: skip
        return self._teacher[key]

    def student(self, steps: int, sway: float | None) -> tuple[Tensor, Tensor, Tensor]:
        """(t [S] fp32, mods, fmods) at the student's step times on the model's device."""
        key = (-steps, sway)  # negative: never the key of an Euler schedule
        if key not in self._cache:
            t = student_times(steps, sway)
            mods, fmods = self.fast.modulation(t)
            self._cache[key] = (t.to(self.fast.device), mods, fmods)
        return self._cache[key]

    def get(self, steps: int, sway: float | None) -> tuple[Tensor, Tensor, Tensor]:
        """(dt [S] fp32, mods [S, depth, 6, D], fmods [S, 2, D]) on the model's device."""
        key = (steps, sway)
        if key not in self._cache:
            t = timesteps(steps, sway)
            mods, fmods = self.fast.modulation(t[:-1])
            dt = (t[1:] - t[:-1]).to(self.fast.device)
            self._cache[key] = (dt, mods, fmods)
        return self._cache[key]


def student_times(steps: int, sway: float | None) -> Tensor:
    """The student's ``steps`` step times (fp32, CPU): ``i / steps`` for ``i < steps``, sway
    applied. Four steps give DMOSpeech 2's 0, .25, .5, .75 (1 - cos(pi/2 t) with sway -1)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    t = torch.arange(steps, dtype=torch.float32) / steps
    return t if sway is None else sway_map(t, sway)


@dataclass(frozen=True)
class TeacherPlan:
    """The teacher-guided start, one row per teacher evaluation (all on the model's device):
    ``x += dt * v(x, t) + coef * noise[slab]``, ``v`` the teacher's guided velocity."""

    t: Tensor  # [E] evaluation times (fp32)
    dt: Tensor  # [E] Euler steps; the last one reaches t = 1 (the clean-mel estimate)
    coef: Tensor  # [E] dt x the reference's noise scale
    slab: Tensor  # [E] long: which of the ``draws`` noise draws each evaluation adds
    draws: int  # noise draws the start needs (0: eta 0, deterministic)
    mods: Tensor  # [E, depth, 6, D] the teacher's modulation tables
    fmods: Tensor  # [E, 2, D]
    steps: int  # the student's step count this start was planned for
    start: int  # the student step that takes over (its time is the teacher's last)

    @property
    def evals(self) -> int:
        return len(self.t)


def teacher_plan(teacher_steps: int, steps: int, sway: float | None, eta: float,
                 start: int = 1) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """(t, dt, coef, slab) of DMOSpeech 2's teacher-guided start (``_teacher_sampling``), fp32
    on the CPU. The reference lays a grid of N points over [0, 1] (sway applied), takes Euler
    steps with the guided teacher up to the first point past a stopping time, and from there
    predicts the clean mel in one jump (``x + (1 - t) v``); the student then runs from its
    step ``start``. Here the grid has N = ``teacher_steps`` x ``steps`` / ``start`` points, so
    ``teacher_steps`` Euler steps reach exactly the student's step-``start`` time: the
    reference's defaults (16 points, stopping time .07, student from step 1 of 4) are
    ``teacher_steps`` 4; its demo's 24 points stopped at .25, student from step 2, are 12.
    ``eta`` adds noise to each velocity, scaled ``sqrt(eta t^2 / ((1 - t)^2 + t^2))``; the
    draw it adds is the reference's ``min(int((1 - t) N), N - 1)``-th of its N, counted here
    from the last (``slab`` 0 = its N-1)."""
    if teacher_steps < 1 or not 1 <= start < steps:
        raise ValueError(
            f"the teacher-guided start needs teacher_steps >= 1 and a student step after it "
            f"(student steps > student_start_step >= 1), got teacher_steps {teacher_steps}, "
            f"steps {steps}, student_start_step {start}"
        )
    n = teacher_steps * steps / start
    if n == int(n):  # the reference's own grid, point for point
        t = torch.linspace(0, 1, int(n) + 1, dtype=torch.float32)[: teacher_steps + 1]
    else:
        t = torch.linspace(0, start / steps, teacher_steps + 1, dtype=torch.float32)
    t = t if sway is None else sway_map(t, sway)
    dt = torch.cat((t[1:] - t[:-1], 1 - t[-1:]))
    ts = t.double()
    scale = (eta * ts**2 / ((1 - ts) ** 2 + ts**2)).sqrt().float()
    last = math.ceil(n) - 1
    slab = torch.tensor([last - min(int((1 - x) * n), last) for x in t.tolist()])
    if eta <= 0:  # no noise: every evaluation points at draw 0, scaled by 0
        slab.zero_()
    return t, dt, dt * scale, slab


def noise_for(job: Job, mel: int, device: torch.device, draws: int | None = None) -> Tensor:
    """``[frames, mel]`` (``draws`` None), or ``[draws, frames, mel]``: the student's fresh
    noise for each step."""
    shape = (job.frames, mel) if draws is None else (draws, job.frames, mel)
    if job.noise is not None:
        if tuple(job.noise.shape) != shape:
            raise ValueError(f"job noise of shape {tuple(job.noise.shape)}, need {shape}")
        return job.noise.to(device, torch.float32)
    gen = torch.Generator(device=device)
    if job.seed is None:
        gen.seed()
    else:
        gen.manual_seed(job.seed)
    return torch.randn(shape, generator=gen, device=device, dtype=torch.float32)


def conditions(fast: FastDiT, jobs: list[Job], n: int) -> tuple[Tensor, Tensor, Tensor]:
    """(cond [B,n,mel] = reference mel / scale, mask [B,n] bool, tokens) padded to ``n``."""
    dev, mel = fast.device, fast.mel_dim
    b = len(jobs)
    cond = torch.zeros(b, n, mel, device=dev)
    mask = torch.zeros(b, n, dtype=torch.bool, device=dev)
    width = max(len(j.tokens) for j in jobs)
    tokens = torch.full((b, width), -1, dtype=torch.long, device=dev)
    for i, j in enumerate(jobs):
        if j.frames > n or j.cond.shape[0] >= j.frames:
            raise ValueError(f"job of {j.frames} frames (ref {j.cond.shape[0]}) does not fit {n}")
        cond[i, : j.cond.shape[0]] = j.cond / fast.mel_scale
        mask[i, : j.frames] = True
        tokens[i, : len(j.tokens)] = j.tokens.to(dev)
    return cond, mask, tokens


def noise_slabs(jobs: list[Job], draws: int, n: int, mel: int, device: torch.device) -> Tensor:
    """``[draws, B, n, mel]``: each job's noise draws, zero-padded to ``n`` frames."""
    noise = torch.zeros(draws, len(jobs), n, mel, device=device)
    for i, j in enumerate(jobs):
        noise[:, i, : j.frames] = noise_for(j, mel, device, draws)
    return noise


def batch_inputs(fast: FastDiT, jobs: list[Job], n: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(x0 [B,n,mel] fp32, pre [2B,n,D], mask [B,n] bool, tokens) padded to ``n`` frames."""
    cond, mask, tokens = conditions(fast, jobs, n)
    x0 = torch.zeros(len(jobs), n, fast.mel_dim, device=fast.device)
    if fast.guided:
        for i, j in enumerate(jobs):
            x0[i, : j.frames] = noise_for(j, fast.mel_dim, fast.device)
    pre = fast.prepare(cond, tokens, [j.frames for j in jobs], n)
    return x0, pre, mask, tokens


@torch.no_grad()
def sample_eager(fast: FastDiT, jobs: list[Job], steps: int, cfg: float, sway: float | None,
                 schedules: Schedules | None = None) -> list[Tensor]:  # fmt: skip
    """Mel ``[frames, mel]`` (fp32, reference part included) for each job."""
    n = max(j.frames for j in jobs)
    x, pre, mask, _ = batch_inputs(fast, jobs, n)
    all_full = all(j.frames == n for j in jobs)
    mask_arg = None if all_full else mask
    dt, mods, fmods = (schedules or Schedules(fast)).get(steps, sway)
    cos, sin = rope_tables(n, fast.dim_head, fast.device)
    cfg_t = torch.tensor(cfg, device=fast.device)
    for i in range(len(dt)):
        v = fast.velocity(x, pre, mods[i], fmods[i], cos, sin, mask_arg, cfg_t)
        x = x + dt[i] * v
    return [x[i, : j.frames] * fast.mel_scale for i, j in enumerate(jobs)]


@torch.no_grad()
def sample_student_eager(fast: FastDiT, jobs: list[Job], steps: int, sway: float | None,
                         schedules: Schedules | None = None) -> list[Tensor]:  # fmt: skip
    """DMOSpeech 2's student sampler: at each step time t, a fresh noise ``z`` is mixed with
    the current clean estimate, ``phi = (1-t) z + t x1``, and one conditional forward gives
    the next estimate ``x1 = phi + (1-t) v(phi, t)``. The model works on mel / scale.
    Returns mel ``[frames, mel]`` for each job (the reference part is the model's, unused)."""
    if fast.guided:
        raise ValueError("the student sampler needs an unguided model (FastDiT(guided=False))")
    n = max(j.frames for j in jobs)
    x1, pre, mask, _ = batch_inputs(fast, jobs, n)
    mask_arg = None if all(j.frames == n for j in jobs) else mask
    noise = noise_slabs(jobs, steps, n, fast.mel_dim, fast.device)
    cos, sin = rope_tables(n, fast.dim_head, fast.device)
    x1 = _student_steps(fast, x1, noise, pre, (schedules or Schedules(fast)).student(steps, sway),
                        0, cos, sin, mask_arg)  # fmt: skip
    return [x1[i, : j.frames] * fast.mel_scale for i, j in enumerate(jobs)]


def _student_steps(fast: FastDiT, x1: Tensor, noise: Tensor, pre: Tensor,
                   schedule: tuple[Tensor, Tensor, Tensor], start: int, cos: Tensor, sin: Tensor,
                   mask: Tensor | None) -> Tensor:  # fmt: skip
    t, mods, fmods = schedule
    for i in range(start, len(t)):
        phi = (1 - t[i]) * noise[i] + t[i] * x1
        x1 = phi + (1 - t[i]) * fast.velocity(phi, pre, mods[i], fmods[i], cos, sin, mask, None)
    return x1


@torch.no_grad()
def sample_guided_start_eager(fast: FastDiT, teacher: FastDiT, jobs: list[Job], steps: int,
                              plan: TeacherPlan, cfg: float, sway: float | None,
                              schedules: Schedules | None = None) -> list[Tensor]:  # fmt: skip
    """DMOSpeech 2 with the teacher-guided start: the teacher (an F5 model, guided by ``cfg``)
    takes the Euler steps of ``plan`` from noise, its last evaluation jumps to a clean-mel
    estimate, and the student refines that from its step 1 on (``sample_student_eager``).
    Each job's noise is ``[steps + plan.draws, frames, mel]``: draw 0 the teacher's starting
    noise, ``plan.start`` .. steps-1 the student's per-step noise (draws 1 .. start-1 are not
    used), then the teacher's ``plan.draws``."""
    if fast.guided or not teacher.guided:
        raise ValueError("the guided start needs an unguided student and a guided teacher")
    if steps != plan.steps:
        raise ValueError(f"a teacher plan for {plan.steps} student steps, not {steps}")
    n = max(j.frames for j in jobs)
    cond, mask, tokens = conditions(fast, jobs, n)
    lengths = [j.frames for j in jobs]
    mask_arg = None if all(f == n for f in lengths) else mask
    noise = noise_slabs(jobs, steps + plan.draws, n, fast.mel_dim, fast.device)
    cos, sin = rope_tables(n, fast.dim_head, fast.device)
    pre = teacher.prepare(cond, tokens, lengths, n)
    cfg_t = torch.tensor(cfg, device=fast.device)
    x = noise[0]
    for e in range(plan.evals):
        v = teacher.velocity(x, pre, plan.mods[e], plan.fmods[e], cos, sin, mask_arg, cfg_t)
        x = x + plan.dt[e] * v
        if plan.draws:
            x = x + plan.coef[e] * noise[steps + int(plan.slab[e])]
    pre = fast.prepare(cond, tokens, lengths, n)
    x1 = _student_steps(fast, x, noise, pre, (schedules or Schedules(fast)).student(steps, sway),
                        plan.start, cos, sin, mask_arg)  # fmt: skip
    return [x1[i, : j.frames] * fast.mel_scale for i, j in enumerate(jobs)]


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


class GraphRunner:
    """CUDA graphs for one (bucket length, batch): the per-request preparation (text embedding,
    condition projection), one Euler step (replayed ``steps`` times) and, optionally, the
    vocoder over the whole bucket. Static buffers are filled before the first replay. A
    student's runner given a ``teacher`` also captures the teacher's preparation and one
    teacher step (replayed once per teacher evaluation) for the teacher-guided start.

    The text is padded with filler tokens to the bucket length and embedded over the bucket:
    filler positions are masked to zero inside upstream's text embedding, so the frames that
    matter see exactly what an unpadded request sees.
    """

    def __init__(self, fast: FastDiT, n: int, batch: int, max_steps: int,
                 pool: Any = None, vocoder: UpstreamModule | None = None,
                 masked: bool = True, teacher: FastDiT | None = None, teacher_evals: int = 0,
                 teacher_draws: int = 0, min_ref: int = 0) -> None:  # fmt: skip
        """``teacher``: a student runner that can also run the teacher-guided start (two more
        graphs: the teacher's preparation and one teacher step), for plans of at most
        ``teacher_evals`` evaluations and ``teacher_draws`` noise draws. ``min_ref``: the
        shortest reference it will see (frames); the vocoder then runs over a window of the
        bucket that leaves out the rest of the reference (see ``vocode_window``)."""
        dev, mel, d = fast.device, fast.mel_dim, fast.dim
        self.fast, self.n, self.batch, self.max_steps = fast, n, batch, max_steps
        self.vocoder = vocoder
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

    def _prepare(self) -> None:
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

    @torch.no_grad()
    def capture(self) -> None:
        self._capture("prepare", self._prepare)
        self._capture("step", self._step)
        head = getattr(self.vocoder, "head", None)
        if hasattr(head, "out") and hasattr(getattr(head, "istft", None), "window"):  # Vocos
            try:
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

    @torch.no_grad()
    def run(self, jobs: list[Job], steps: int, cfg: float, sway: float | None,
            schedules: Schedules,
            teacher: TeacherPlan | None = None) -> list[tuple[Tensor, Tensor | None]]:  # fmt: skip
        """For each job: (new mel ``[frames - n_ref, mel]``, new audio or None). ``teacher``:
        run the teacher-guided start first (``sample_guided_start_eager``)."""
        if len(jobs) != self.batch or not self.fits(steps, teacher):
            raise ValueError("job batch, step count or teacher plan does not fit this graph")
        draws = teacher.draws if teacher is not None else 0
        dev, mel = self.fast.device, self.fast.mel_dim
        self.tokens.fill_(-1)
        self.cond.zero_()
        self.mask.zero_()
        self.ref.zero_()
        for i, j in enumerate(jobs):
            nref = j.cond.shape[0]
            if (
                j.frames > self.n
                or nref >= j.frames
                or len(j.tokens) > self.n
                or (not self.masked and j.frames != self.n)
            ):
                raise ValueError(f"job of {j.frames} frames (ref {nref}) does not fit {self.n}")
            if self.student:
                noise = noise_for(j, mel, dev, steps + draws)
                self.noise[:steps, i, : j.frames] = noise[:steps]
                tail = slice(self.max_steps, self.max_steps + draws)
                self.noise[tail, i, : j.frames] = noise[steps:]
            else:
                self.noise[i, : j.frames] = noise_for(j, mel, dev)
            self.cond[i, :nref] = j.cond / self.fast.mel_scale
            self.ref[i, :nref] = True
            self.mask[i, : j.frames] = True
            self.lengths[i] = j.frames
            self.tokens[i, : len(j.tokens)] = j.tokens.to(dev, non_blocking=True)
        if self.student:
            dt, mods, fmods = schedules.student(steps, sway)
        else:
            dt, mods, fmods = schedules.get(steps, sway)
            assert self.cfg is not None
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
        windows = [vocode_window(j.cond.shape[0], j.frames, self.n, self.vwidth) for j in jobs]
        starts = [w for w in windows if w is not None]
        audio_all = None
        if "vocode" in self.graphs and len(starts) == len(jobs):  # else the caller vocodes
            for i, start in enumerate(starts):
                self.vstart[i] = start
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
