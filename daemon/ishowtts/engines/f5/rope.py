"""Rotary position embedding (RoPE) for the FastDiT's attention: the angle tables, in fp32
whatever the model precision, and the rotation of q and k in three layouts (heads major, rows of
frames, and rows as one Triton kernel), which ``FastDiT`` picks by its fusions."""

from __future__ import annotations

import torch
from torch import Tensor

from . import fused  # also defines torch.ops.ishowtts.rope_qk


def rope_tables(n: int, dim_head: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """cos and sin of the rotary angles, ``[n, dim_head/2]``, fp32 (x-transformers' layout:
    pairs of adjacent channels rotate together)."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, dim_head, 2, device=device).float() / dim_head))
    angles = torch.arange(n, device=device, dtype=torch.float32)[:, None] * inv_freq[None, :]
    return angles.cos(), angles.sin()


def apply_rope(t: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    pairs = t.float().unflatten(-1, (-1, 2))
    a, b = pairs[..., 0], pairs[..., 1]
    return torch.stack((a * cos - b * sin, b * cos + a * sin), dim=-1).flatten(-2).to(t.dtype)


def rope_heads_major(qkv: Tensor, cos: Tensor, sin: Tensor,
                     rope_heads: int | None) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """q, k (rotated) and v ``[B,H,N,dh]`` from ``qkv [B,N,3,H,dh]``, q and k written heads
    major (the layout change happens in the rotation's kernel)."""
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    if rope_heads is None:
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v
    r = rope_heads
    q = torch.cat((apply_rope(q[:, :r], cos, sin), q[:, r:]), dim=1)
    k = torch.cat((apply_rope(k[:, :r], cos, sin), k[:, r:]), dim=1)
    return q, k, v


def _heads(qk: Tensor, qkv: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """q, k from the rotated ``qk [B,N,2,H,dh]`` and v from ``qkv``, as ``[B,H,N,dh]`` views."""
    return qk[:, :, 0].transpose(1, 2), qk[:, :, 1].transpose(1, 2), qkv[:, :, 2].transpose(1, 2)


def rope_rows(qkv: Tensor, cos: Tensor, sin: Tensor,
              rope_heads: int | None) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """The same, rotated where they lie: q and k stay rows of frames (``[B,N,H,dh]``, seen
    through ``[B,H,N,dh]`` views), so the rotation is a plain elementwise pass instead of a
    transposing one, and the attention kernel, which takes strided heads, writes its output
    in rows too (no copy before the output projection)."""
    c, s = cos[:, None, None], sin[:, None, None]  # [N, 1, 1, dh/2] against [B,N,2,H,dh/2]
    qk = qkv[:, :, :2]
    if rope_heads is None:
        qk = apply_rope(qk, c, s)
    else:
        r = rope_heads
        qk = torch.cat((apply_rope(qk[:, :, :, :r], c, s), qk[:, :, :, r:]), dim=3)
    return _heads(qk, qkv)


def rope_kernel(qkv: Tensor, cos: Tensor, sin: Tensor,
                rope_heads: int | None) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """``rope_rows`` as one Triton kernel, through its op (compiled code)."""
    qk = torch.ops.ishowtts.rope_qk(qkv, cos, sin, qkv.shape[3] if rope_heads is None
                                    else rope_heads)  # fmt: skip
    return _heads(qk, qkv)


def rope_kernel_launched(qkv: Tensor, cos: Tensor, sin: Tensor,
                         rope_heads: int | None) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """``rope_kernel`` with the kernel launched directly (the eager path: fused.py says why)."""
    qk = fused.rope_qk(qkv, cos, sin, qkv.shape[3] if rope_heads is None else rope_heads)
    return _heads(qk, qkv)
