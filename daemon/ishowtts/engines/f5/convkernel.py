# mypy: disable-error-code="no-untyped-def"
"""The input embedding's grouped convolution + bias + Mish as one Triton kernel (CUDA only).

F5's position embedding is two ``Conv1d(1024, 1024, 31, groups=16)`` layers. cuDNN runs each as
16 kernels plus layout transposes; as a batched matmul over unfolded windows it is one GEMM but
also a 31x copy of the activations (~126 MB a layer at 1,000 frames), which made it an eighth of
a step. Here each program computes one (frames tile, group) block as an implicit GEMM: 31
shifted tiles of the input times the group's weight slice for that tap, accumulated in fp32,
then bias and Mish in registers. Nothing is materialised.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .fused import CUSTOM_OPS

try:
    import triton
    import triton.language as tl
except ImportError:  # a CPU-only install: the torch path in fastdit is used
    triton = None
if not CUSTOM_OPS:  # torch < 2.4 (older JetPack wheels): the torch path
    triton = None


def available(device: torch.device, channels_per_group: int) -> bool:
    """Triton present, a CUDA device, and a group width ``tl.dot`` takes (a power of two >= 16;
    F5 has 64)."""
    cg = channels_per_group
    return triton is not None and device.type == "cuda" and cg >= 16 and cg & (cg - 1) == 0


def pack_weight(w: Tensor, groups: int) -> Tensor:
    """Conv1d weight ``[C, C/G, K]`` → ``[G, K, C/G (in), C/G (out)]``: one tap's block of a
    group is a contiguous matrix the kernel loads with one instruction."""
    c, cg, k = w.shape
    return w.view(groups, c // groups, cg, k).permute(0, 3, 2, 1).contiguous()


if triton is not None:

    @triton.jit
    def _conv_mish_kernel(
        y_ptr, w_ptr, b_ptr, out_ptr, n,
        C: tl.constexpr, CG: tl.constexpr, K: tl.constexpr, BLOCK_N: tl.constexpr,
        PRECISION: tl.constexpr,
    ):  # fmt: skip
        tile, g, b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
        rows = tile * BLOCK_N + tl.arange(0, BLOCK_N)
        ch = tl.arange(0, CG)
        base = y_ptr + b * n * C + g * CG
        acc = tl.zeros((BLOCK_N, CG), dtype=tl.float32)
        for k in range(K):
            src = rows + (k - K // 2)
            x = tl.load(
                base + src[:, None] * C + ch[None, :],
                mask=((src >= 0) & (src < n))[:, None],  # zero padding at both ends
                other=0.0,
            )
            w = tl.load(w_ptr + ((g * K + k) * CG + ch[:, None]) * CG + ch[None, :])
            acc = tl.dot(x, w, acc, input_precision=PRECISION)
        acc += tl.load(b_ptr + g * CG + ch).to(tl.float32)[None, :]
        # Mish: x * tanh(softplus(x)) = x * e(e + 2) / (e(e + 2) + 2) with e = exp(x).
        e = tl.exp(tl.minimum(acc, 20.0))
        q = e * (e + 2.0)
        out = tl.where(acc > 20.0, acc, acc * q / (q + 2.0))
        tl.store(
            out_ptr + b * n * C + rows[:, None] * C + g * CG + ch[None, :],
            out.to(out_ptr.dtype.element_ty),
            mask=(rows < n)[:, None],
        )

    # Launched as it is on the eager path, the op ``ishowtts::conv_mish`` in compiled code
    # (why both: fused.py).
    def conv_mish(y: Tensor, w_packed: Tensor, bias: Tensor) -> Tensor:
        """``mish(conv1d(y, groups=G, padding=K//2) + bias)`` on channels-last ``y [B,N,C]``
        with ``w_packed`` from ``pack_weight``."""
        bsz, n, c = y.shape
        groups, k, cg, _ = w_packed.shape
        out = torch.empty_like(y)
        block_n = 64
        precision = "ieee" if y.dtype == torch.float32 else "tf32"  # fp16/bf16 ignore it
        grid = (triton.cdiv(n, block_n), groups, bsz)
        _conv_mish_kernel[grid](
            y, w_packed, bias, out, n,
            C=c, CG=cg, K=k, BLOCK_N=block_n, PRECISION=precision,
            num_warps=4, num_stages=3,
        )  # fmt: skip
        return out

    _conv_mish_op = torch.library.custom_op("ishowtts::conv_mish", conv_mish, mutates_args=())

    @_conv_mish_op.register_fake
    def _(y: Tensor, w_packed: Tensor, bias: Tensor) -> Tensor:
        return torch.empty_like(y)
