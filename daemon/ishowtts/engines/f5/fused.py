# mypy: disable-error-code="no-untyped-def"
"""Kernels that take elementwise passes out of the DiT block (CUDA only).

At a 5 s bucket a block moves 4-8 MB tensors between short elementwise kernels; on an H200
those passes were a quarter of the step. Two of them go here:
- ``linear_gelu``: the feed-forward's first projection with its bias and tanh-GELU in the
  cuBLASLt epilogue (``torch._addmm_activation``), wrapped as a custom op so inductor keeps it
  whole instead of splitting it back into a GEMM and a pointwise kernel. The CPU version of
  that aten op computes the exact (erf) GELU, not F5's tanh form: CUDA only.
- ``rope_qk``: RoPE over q and k as one Triton pass over the projection's rows. Inductor's
  kernel for the same rotation (interleaved pairs, a stack) ran at under half the memory
  bandwidth.
"""

from __future__ import annotations

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
except ImportError:  # a CPU-only install, or a board without Triton: the torch path is used
    triton = None
# torch.library.custom_op arrived in torch 2.4; older JetPack wheels run the unfused paths.
CUSTOM_OPS = hasattr(torch.library, "custom_op")
if not CUSTOM_OPS:
    triton = None

# Each kernel is a plain function, called as it is on the eager path, and a custom op of the
# same (``torch.ops.ishowtts.*``) for compiled code, where inductor must keep it whole. The eager
# path stays off the ops: a custom op's first call imports torch._dynamo (its kernels are
# wrapped in ``torch._disable_dynamo``), ~5 s on the H200 host, on the way to a start's first
# line. Not ``triton_op`` either: that imports torch._inductor at definition, for inlining the
# kernel, which buys nothing here (the compiled step runs inside CUDA graphs).


def linear_gelu(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """``gelu_tanh(x @ w.T + b)`` over the last dimension of ``x``."""
    flat = x.reshape(-1, x.shape[-1])
    out = torch._addmm_activation(b, flat, w.t(), use_gelu=True)
    return out.view(*x.shape[:-1], w.shape[0])


if CUSTOM_OPS:
    _linear_gelu_op = torch.library.custom_op("ishowtts::linear_gelu", linear_gelu, mutates_args=())

    @_linear_gelu_op.register_fake
    def _(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
        return x.new_empty(*x.shape[:-1], w.shape[0])


def available(device: torch.device) -> frozenset[str]:
    """The fusions of this module that run on ``device``."""
    if device.type != "cuda":
        return frozenset()
    return frozenset({"gelu"} if CUSTOM_OPS else ()) | frozenset({"rope"} if triton else ())


if triton is not None:

    @triton.jit
    def _rope_kernel(
        qkv_ptr, cos_ptr, sin_ptr, out_ptr, rows, n,
        D: tl.constexpr, DH: tl.constexpr, ROT: tl.constexpr, BM: tl.constexpr,
        BC: tl.constexpr,
    ):  # fmt: skip
        r = tl.program_id(0) * BM + tl.arange(0, BM)  # frames (batch-major rows)
        c = tl.program_id(1) * BC + tl.arange(0, BC)  # columns of q|k, [0, 2D)
        live = (r < rows)[:, None] & (c < 2 * D)[None, :]
        x = tl.load(qkv_ptr + r[:, None] * (3 * D) + c[None, :], mask=live, other=0.0)
        x = x.to(tl.float32)
        a, b = tl.split(tl.reshape(x, (BM, BC // 2, 2)))  # even and odd channels
        pair = (tl.program_id(1) * (BC // 2) + tl.arange(0, BC // 2)) % (DH // 2)
        table = (r % n)[:, None] * (DH // 2) + pair[None, :]
        cos = tl.load(cos_ptr + table, mask=(r < rows)[:, None], other=0.0)
        sin = tl.load(sin_ptr + table, mask=(r < rows)[:, None], other=0.0)
        y = tl.reshape(tl.join(a * cos - b * sin, b * cos + a * sin), (BM, BC))
        if ROT < D:  # v0 models rotate only the first heads
            y = tl.where(((c % D) < ROT)[None, :], y, x)
        tl.store(out_ptr + r[:, None] * (2 * D) + c[None, :], y.to(out_ptr.dtype.element_ty),
                 mask=live)  # fmt: skip

    def rope_qk(qkv: Tensor, cos: Tensor, sin: Tensor, rope_heads: int) -> Tensor:
        """q and k of ``qkv [B,N,3,H,dh]`` (contiguous) rotated, ``[B,N,2,H,dh]``: angles
        from ``cos``/``sin`` ``[N, dh/2]`` (fp32), adjacent channels paired; only the first
        ``rope_heads`` heads turn."""
        bsz, n, _, heads, dh = qkv.shape
        d = heads * dh
        out = qkv.new_empty(bsz, n, 2, heads, dh)
        bm, bc = 16, 256
        grid = (triton.cdiv(bsz * n, bm), triton.cdiv(2 * d, bc))
        _rope_kernel[grid](
            qkv, cos, sin, out, bsz * n, n,
            D=d, DH=dh, ROT=rope_heads * dh, BM=bm, BC=bc, num_warps=4,
        )  # fmt: skip
        return out

    _rope_qk_op = torch.library.custom_op("ishowtts::rope_qk", rope_qk, mutates_args=())

    @_rope_qk_op.register_fake
    def _(qkv: Tensor, cos: Tensor, sin: Tensor, rope_heads: int) -> Tensor:
        bsz, n, _, heads, dh = qkv.shape
        return qkv.new_empty(bsz, n, 2, heads, dh)
