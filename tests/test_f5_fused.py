"""The fused kernels against the torch paths they replace: RoPE's Triton kernel on the CPU
through Triton's interpreter (a subprocess: the interpreter is chosen at import), both kernels
and a whole fused step on CUDA when there is a GPU."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ishowtts.engines.f5 import fastdit, rope
from tests.scripts import assert_passes_in_interpreter

pytest.importorskip("triton")

CHECK = """
import torch
from ishowtts.engines.f5 import fused
from ishowtts.engines.f5.rope import rope_heads_major, rope_kernel, rope_rows, rope_tables
torch.manual_seed(0)
for dtype, tol in ((torch.float32, 1e-6), (torch.float16, 2e-3)):
    for b, n, heads, dh, rot in ((2, 37, 4, 32, None), (1, 21, 4, 64, 1), (1, 5, 2, 128, 2), (2, 9, 2, 32, 1)):
        qkv = torch.randn(b, n, 3, heads, dh).to(dtype)
        cos, sin = rope_tables(n, dh, torch.device("cpu"))
        want = rope_heads_major(qkv.float(), cos, sin, rot)
        for rope in (rope_kernel, rope_rows):
            got = rope(qkv, cos, sin, rot)
            for g, w in zip(got, want):
                assert g.dtype == dtype and g.shape == w.shape, (g.dtype, g.shape, w.shape)
                err = (g.float() - w).abs().max().item()
                assert err < tol, (rope.__name__, dtype, n, dh, rot, err)
print("ok")
"""


def test_rope_kernel_matches_the_torch_path_in_the_interpreter():
    assert_passes_in_interpreter(CHECK)


def test_unknown_fusion_is_refused():
    from tests.f5_tiny import tiny_cfm

    with pytest.raises(ValueError, match="unknown fusions"):
        fastdit.FastDiT(tiny_cfm().transformer, fuse=frozenset({"everything"}))


def test_cpu_uses_only_the_torch_fusions():
    from tests.f5_tiny import tiny_cfm

    fast = fastdit.FastDiT(tiny_cfm().transformer)
    assert fast.fuse == frozenset({"residual", "rows"})


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_linear_gelu_is_the_tanh_gelu(dtype):
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(997, 256, device="cuda", generator=g)
    w = torch.randn(512, 256, device="cuda", generator=g) * 0.1
    b = torch.randn(512, device="cuda", generator=g)
    want = F.gelu(F.linear(x.double(), w.double(), b.double()), approximate="tanh")
    got = torch.ops.ishowtts.linear_gelu(x.to(dtype), w.to(dtype), b.to(dtype))
    err = (got.double() - want).abs().max().item()
    assert err < {torch.float32: 1e-4, torch.float16: 1e-2}[dtype], err
    erf = F.gelu(F.linear(x.double(), w.double(), b.double()))
    if dtype == torch.float32:  # tells the two GELUs apart (they differ by up to ~5e-4)
        assert err < (got.double() - erf).abs().max().item() / 4


@cuda
@pytest.mark.parametrize("rot", [None, 1])
def test_rope_kernel_on_cuda(rot):
    qkv = torch.randn(2, 993, 3, 16, 64, device="cuda").half()
    cos, sin = rope.rope_tables(993, 64, qkv.device)
    want = rope.rope_heads_major(qkv.float(), cos, sin, rot)
    for got, w in zip(rope.rope_kernel(qkv, cos, sin, rot), want, strict=True):
        assert (got.float() - w).abs().max().item() < 2e-3


@cuda
def test_fused_step_matches_the_plain_step_compiled():
    """Every fusion against none, both compiled (as the engine runs them), on a guided tiny
    model in fp16: the same velocity within fp16 rounding."""
    from tests.f5_tiny import tiny_cfm

    torch.manual_seed(0)
    cfm = tiny_cfm(depth=3).cuda().half()
    velocities = []
    for fuse in (frozenset(), None):
        torch._dynamo.reset()
        fast = fastdit.FastDiT(cfm.transformer, fuse=fuse)
        assert fast.fuse == (fuse if fuse is not None else fastdit.FUSIONS)
        fast.compile()
        n = 77
        g = torch.Generator(device="cuda").manual_seed(1)
        x = torch.randn(1, n, 100, device="cuda", generator=g)
        pre = torch.randn(2, n, fast.dim, device="cuda", generator=g).half()
        mods, fmods = fast.modulation(torch.tensor([0.3]))
        cos, sin = rope.rope_tables(n, fast.dim_head, x.device)
        cfg = torch.tensor(2.0, device="cuda")
        velocities.append(fast.velocity(x, pre, mods[0], fmods[0], cos, sin, None, cfg))
    plain, fused = velocities
    err = ((fused - plain).norm() / plain.norm()).item()
    assert err < 5e-3, err
