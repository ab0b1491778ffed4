"""Model FLOPs of an F5 step and the GPU's measured matmul peak: the figures behind the model
FLOP utilisation that bench_engine.py and bench_step.py print."""

from __future__ import annotations

import torch

from ishowtts.engines.f5.fastdit import FastDiT


def matmul_peak(dtype: torch.dtype = torch.float16) -> float:
    """Best measured dense matmul throughput, TFLOP/s."""
    best = 0.0
    for n in (4096, 8192):
        a = torch.randn(n, n, device="cuda", dtype=dtype)
        b = torch.randn(n, n, device="cuda", dtype=dtype)
        for _ in range(3):
            a @ b
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        iters = 30
        start.record()
        for _ in range(iters):
            a @ b
        end.record()
        torch.cuda.synchronize()
        best = max(best, 2 * n**3 * iters / (start.elapsed_time(end) / 1e3) / 1e12)
    return best


def step_flops(fast: FastDiT | None, n: int) -> float:
    """Model FLOPs of one step of ``fast`` over ``n`` real frames (both CFG halves when
    guided)."""
    assert fast is not None
    bc = 2 if fast.guided else 1
    d, m = fast.dim, bc * n
    inner, ff = fast.heads * fast.dim_head, fast.ff_dim
    per_layer = 2 * m * d * 3 * inner + 2 * m * inner * d + 2 * 2 * m * d * ff
    per_layer += 4 * bc * n * n * inner  # QK^T and PV
    conv = 2 * 2 * m * d * (d // fast.groups) * fast.conv_taps
    io = 2 * n * d * fast.mel_dim + 2 * m * d * fast.mel_dim
    return fast.depth * per_layer + conv + io
