"""Fixed-step sampling of the flow: Euler with packed classifier-free guidance (F5), or the
few-step student sampler of DMOSpeech 2 (no guidance; see ``sample_student_eager``), optionally
after its teacher-guided start (a guided F5 teacher first; ``sample_guided_start_eager``).

The samplers here run eagerly (any shape, any device: CPU tests, fidelity against upstream);
``graphs.GraphRunner`` runs the same steps (``FastDiT.velocity``) as CUDA graphs over shape
buckets. The state is kept in fp32 whatever the model precision; the model sees it cast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .fastdit import FastDiT, sway_map, timesteps
from .rope import rope_tables

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

    def teacher(
        self, teacher_steps: int, steps: int, sway: float | None, eta: float, start: int = 1
    ) -> TeacherPlan:
        """The teacher-guided start before a ``steps``-step student taking over at its step
        ``start``, with this object's model (the teacher) giving the modulation tables; see
        ``teacher_plan``."""
        key = (teacher_steps, steps, sway, eta, start)
        if key not in self._teacher:
            t, dt, coef, slab = teacher_plan(teacher_steps, steps, sway, eta, start)
            mods, fmods = self.fast.modulation(t)
            dev = self.fast.device
            self._teacher[key] = TeacherPlan(
                t.to(dev),
                dt.to(dev),
                coef.to(dev),
                slab.to(dev),
                int(slab.max()) + 1 if eta > 0 else 0,
                mods,
                fmods,
                steps,
                start,
            )
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


def teacher_plan(
    teacher_steps: int, steps: int, sway: float | None, eta: float, start: int = 1
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
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


def _generator(job: Job, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    if job.seed is None:
        gen.seed()
    else:
        gen.manual_seed(job.seed)
    return gen


def noise_for(job: Job, mel: int, device: torch.device, draws: int | None = None) -> Tensor:
    """``[frames, mel]`` (``draws`` None), or ``[draws, frames, mel]``: the student's fresh
    noise for each step."""
    shape = (job.frames, mel) if draws is None else (draws, job.frames, mel)
    if job.noise is not None:
        if tuple(job.noise.shape) != shape:
            raise ValueError(f"job noise of shape {tuple(job.noise.shape)}, need {shape}")
        return job.noise.to(device, torch.float32)
    return torch.randn(shape, generator=_generator(job, device), device=device, dtype=torch.float32)


def draw_noise(out: Tensor, job: Job) -> None:
    """``noise_for`` the job, of ``out``'s shape (``[frames, mel]`` or ``[draws, frames,
    mel]``), written into ``out`` (fp32). Drawn in place when ``out`` is contiguous: ``randn``
    is ``normal_`` on a fresh contiguous tensor, so the numbers are the same with one kernel
    fewer."""
    if job.noise is None and out.is_contiguous():
        out.normal_(generator=_generator(job, out.device))
    else:
        draws = None if out.dim() == 2 else out.shape[0]
        out.copy_(noise_for(job, out.shape[-1], out.device, draws))


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
def sample_eager(
    fast: FastDiT,
    jobs: list[Job],
    steps: int,
    cfg: float,
    sway: float | None,
    schedules: Schedules | None = None,
) -> list[Tensor]:
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
def sample_student_eager(
    fast: FastDiT,
    jobs: list[Job],
    steps: int,
    sway: float | None,
    schedules: Schedules | None = None,
) -> list[Tensor]:
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
    x1 = _student_steps(
        fast,
        x1,
        noise,
        pre,
        (schedules or Schedules(fast)).student(steps, sway),
        0,
        cos,
        sin,
        mask_arg,
    )
    return [x1[i, : j.frames] * fast.mel_scale for i, j in enumerate(jobs)]


def _student_steps(
    fast: FastDiT,
    x1: Tensor,
    noise: Tensor,
    pre: Tensor,
    schedule: tuple[Tensor, Tensor, Tensor],
    start: int,
    cos: Tensor,
    sin: Tensor,
    mask: Tensor | None,
) -> Tensor:
    t, mods, fmods = schedule
    for i in range(start, len(t)):
        phi = (1 - t[i]) * noise[i] + t[i] * x1
        x1 = phi + (1 - t[i]) * fast.velocity(phi, pre, mods[i], fmods[i], cos, sin, mask, None)
    return x1


@torch.no_grad()
def sample_guided_start_eager(
    fast: FastDiT,
    teacher: FastDiT,
    jobs: list[Job],
    steps: int,
    plan: TeacherPlan,
    cfg: float,
    sway: float | None,
    schedules: Schedules | None = None,
) -> list[Tensor]:
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
    x1 = _student_steps(
        fast,
        x,
        noise,
        pre,
        (schedules or Schedules(fast)).student(steps, sway),
        plan.start,
        cos,
        sin,
        mask_arg,
    )
    return [x1[i, : j.frames] * fast.mel_scale for i, j in enumerate(jobs)]
