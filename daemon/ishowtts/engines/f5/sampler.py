"""Fixed-step Euler sampling of the flow, with packed classifier-free guidance.

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

import torch
from torch import Tensor, nn

from .fastdit import FastDiT, rope_tables, timesteps

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

    def get(self, steps: int, sway: float | None) -> tuple[Tensor, Tensor, Tensor]:
        """(dt [S] fp32, mods [S, depth, 6, D], fmods [S, 2, D]) on the model's device."""
        key = (steps, sway)
        if key not in self._cache:
            t = timesteps(steps, sway)
            mods, fmods = self.fast.modulation(t[:-1])
            dt = (t[1:] - t[:-1]).to(self.fast.device)
            self._cache[key] = (dt, mods, fmods)
        return self._cache[key]


def noise_for(job: Job, mel: int, device: torch.device) -> Tensor:
    if job.noise is not None:
        return job.noise.to(device, torch.float32)
    gen = torch.Generator(device=device)
    if job.seed is None:
        gen.seed()
    else:
        gen.manual_seed(job.seed)
    return torch.randn(job.frames, mel, generator=gen, device=device, dtype=torch.float32)


def batch_inputs(fast: FastDiT, jobs: list[Job], n: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(x0 [B,n,mel] fp32, pre [2B,n,D], mask [B,n] bool, tokens) padded to ``n`` frames."""
    dev, mel = fast.device, fast.mel_dim
    b = len(jobs)
    x0 = torch.zeros(b, n, mel, device=dev)
    cond = torch.zeros(b, n, mel, device=dev)
    mask = torch.zeros(b, n, dtype=torch.bool, device=dev)
    width = max(len(j.tokens) for j in jobs)
    tokens = torch.full((b, width), -1, dtype=torch.long, device=dev)
    for i, j in enumerate(jobs):
        if j.frames > n or j.cond.shape[0] >= j.frames:
            raise ValueError(f"job of {j.frames} frames (ref {j.cond.shape[0]}) does not fit {n}")
        x0[i, : j.frames] = noise_for(j, mel, dev)
        cond[i, : j.cond.shape[0]] = j.cond
        mask[i, : j.frames] = True
        tokens[i, : len(j.tokens)] = j.tokens.to(dev)
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
    return [x[i, : j.frames] for i, j in enumerate(jobs)]


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
    vocoder over the whole bucket. Static buffers are filled before the first replay.

    The text is padded with filler tokens to the bucket length and embedded over the bucket:
    filler positions are masked to zero inside upstream's text embedding, so the frames that
    matter see exactly what an unpadded request sees.
    """

    def __init__(self, fast: FastDiT, n: int, batch: int, max_steps: int,
                 pool: object | None = None, vocoder: nn.Module | None = None,
                 masked: bool = True) -> None:  # fmt: skip
        dev, mel, d = fast.device, fast.mel_dim, fast.dim
        self.fast, self.n, self.batch, self.max_steps = fast, n, batch, max_steps
        self.vocoder = vocoder
        # Unmasked: every job fills the bucket exactly (durations quantised to the bucket grid),
        # so attention runs without a mask (a faster kernel) and nothing needs zeroing.
        self.masked = masked
        self.spec: Tensor | None = None
        self.vocode_error = ""
        self.x = torch.zeros(batch, n, mel, device=dev)
        self.noise = torch.zeros(batch, n, mel, device=dev)
        self.cond = torch.zeros(batch, n, mel, device=dev)
        self.ref = torch.zeros(batch, n, dtype=torch.bool, device=dev)  # reference frames
        self.tokens = torch.full((batch, n), -1, dtype=torch.long, device=dev)
        self.pre = torch.zeros(2 * batch, n, d, device=dev, dtype=fast.dtype)
        self.mask = torch.ones(batch, n, dtype=torch.bool, device=dev)
        self.lengths = torch.full((batch,), n, dtype=torch.long, device=dev)
        self.cos, self.sin = rope_tables(n, fast.dim_head, dev)
        self.mods = torch.zeros(max_steps, fast.depth, 6, d, device=dev, dtype=fast.dtype)
        self.fmods = torch.zeros(max_steps, 2, d, device=dev, dtype=fast.dtype)
        self.dt = torch.zeros(max_steps, device=dev)
        self.idx = torch.zeros(1, dtype=torch.long, device=dev)
        self.cfg = torch.zeros((), device=dev)
        self.graphs: dict[str, torch.cuda.CUDAGraph] = {}
        self.pool = pool

    def _prepare(self) -> None:
        self.pre.copy_(self.fast.prepare_padded(self.cond, self.tokens, self.lengths))
        self.x.copy_(self.noise * self.mask[..., None] if self.masked else self.noise)
        self.idx.zero_()

    def _step(self) -> None:
        i = self.idx
        mods = self.mods.index_select(0, i)[0]
        fmods = self.fmods.index_select(0, i)[0]
        mask = self.mask if self.masked else None
        v = self.fast.velocity(self.x, self.pre, mods, fmods, self.cos, self.sin, mask, self.cfg)
        self.x.add_(self.dt.index_select(0, i) * v)
        self.idx.add_(1)

    def _vocode(self) -> None:
        """Vocos up to its spectrum (the heavy part); the inverse STFT runs outside the graph
        because ``torch.istft`` checks its window on the host."""
        assert self.vocoder is not None
        # The whole bucket: reference mel, new mel, then silence; cut to the new part after.
        mel = torch.where(self.ref[..., None], self.cond, self.x)
        if self.masked:
            mel = torch.where(self.mask[..., None], mel, SILENCE)
        spec = self.vocoder.head.out(self.vocoder.backbone(mel.transpose(1, 2)))
        if self.spec is None:
            self.spec = spec
        else:
            self.spec.copy_(spec)

    def _istft(self) -> Tensor:
        assert self.vocoder is not None and self.spec is not None
        mag, phase = self.spec.transpose(1, 2).float().chunk(2, dim=1)
        mag = torch.exp(mag).clip(max=1e2)
        return self.vocoder.head.istft(torch.polar(mag, phase))

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
        if hasattr(head, "out") and hasattr(head, "istft"):  # Vocos' ISTFT head
            try:
                self._capture("vocode", self._vocode)
            except RuntimeError as exc:  # the vocoder then runs eagerly, after the graphs
                self.graphs.pop("vocode", None)
                self.vocode_error = repr(exc)[:300]

    @torch.no_grad()
    def run(self, jobs: list[Job], steps: int, cfg: float, sway: float | None,
            schedules: Schedules) -> list[tuple[Tensor, Tensor | None]]:  # fmt: skip
        """For each job: (new mel ``[frames - n_ref, mel]``, new audio or None)."""
        if len(jobs) != self.batch or steps > self.max_steps:
            raise ValueError("job batch or step count does not fit this graph")
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
            self.noise[i, : j.frames] = noise_for(j, mel, dev)
            self.cond[i, :nref] = j.cond
            self.ref[i, :nref] = True
            self.mask[i, : j.frames] = True
            self.lengths[i] = j.frames
            self.tokens[i, : len(j.tokens)] = j.tokens.to(dev, non_blocking=True)
        dt, mods, fmods = schedules.get(steps, sway)
        self.mods[:steps].copy_(mods)
        self.fmods[:steps].copy_(fmods)
        self.dt[:steps].copy_(dt)
        self.cfg.fill_(cfg)
        self.graphs["prepare"].replay()
        step = self.graphs["step"]
        for _ in range(steps):
            step.replay()
        audio_all = None
        if "vocode" in self.graphs:
            self.graphs["vocode"].replay()
            audio_all = self._istft()
        out = []
        for i, j in enumerate(jobs):
            nref = j.cond.shape[0]
            new = self.x[i, nref : j.frames].clone()
            audio = None
            if audio_all is not None:
                audio = audio_all[i, nref * HOP : j.frames * HOP]
            out.append((new, audio))
        return out
