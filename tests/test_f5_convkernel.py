"""The fused grouped-convolution kernel against the torch path it replaces: on the CPU through
Triton's interpreter (a subprocess, since the interpreter is chosen at import), on CUDA when
there is a GPU, at F5's real shape."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.scripts import assert_passes_in_interpreter

pytest.importorskip("triton")

CHECK = """
import torch, torch.nn.functional as F
from ishowtts.engines.f5 import convkernel as ck
from ishowtts.engines.f5.fastdit import conv_mish
conv_mish_op = torch.ops.ishowtts.conv_mish
torch.manual_seed(0)
for dtype, tol in ((torch.float32, 1e-5), (torch.float16, 3e-3)):
    for b, n, g, cg, k in ((2, 37, 2, 16, 5), (1, 70, 2, 32, 31)):
        c = g * cg
        y, w, bias = torch.randn(b, n, c) * 2, torch.randn(c, cg, k) * 0.1, torch.randn(c)
        want = conv_mish(y, w, bias, g)
        got = conv_mish_op(y.to(dtype), ck.pack_weight(w, g).to(dtype), bias.to(dtype))
        err = ((got.float() - want).abs().max() / want.abs().max()).item()
        assert got.dtype == dtype and got.shape == want.shape, (got.dtype, got.shape)
        assert err < tol, (dtype, n, k, err)
print("ok")
"""


def test_kernel_matches_the_torch_path_in_the_interpreter():
    assert_passes_in_interpreter(CHECK)


def test_conv_matches_cudnn_reference():
    """The torch path itself is the grouped Conv1d it stands for."""
    from ishowtts.engines.f5.fastdit import conv_mish

    torch.manual_seed(1)
    y, w, b = torch.randn(2, 50, 64), torch.randn(64, 16, 31) * 0.1, torch.randn(64)
    want = F.mish(F.conv1d(y.transpose(1, 2), w, b, padding=15, groups=4).transpose(1, 2))
    torch.testing.assert_close(conv_mish(y, w, b, 4), want, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_kernel_on_cuda_at_f5_shape(dtype):
    from ishowtts.engines.f5 import convkernel as ck
    from ishowtts.engines.f5.fastdit import conv_mish, conv_mish_fused

    torch.manual_seed(2)
    y = torch.randn(2, 997, 1024, device="cuda")
    w, b = torch.randn(1024, 64, 31, device="cuda") * 0.02, torch.randn(1024, device="cuda")
    want = conv_mish(y.double(), w.double(), b.double(), 16)
    got = conv_mish_fused(y.to(dtype), ck.pack_weight(w, 16).to(dtype), b.to(dtype), 16)
    err = ((got.double() - want).abs().max() / want.abs().max()).item()
    assert err < {torch.float32: 1e-5, torch.float16: 3e-3, torch.bfloat16: 2e-2}[dtype], err
    compiled = torch.compile(conv_mish_fused, fullgraph=True, dynamic=True)
    torch.testing.assert_close(compiled(y.to(dtype), ck.pack_weight(w, 16).to(dtype),
                                        b.to(dtype), 16), got)  # fmt: skip
