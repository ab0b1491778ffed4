"""What an F5 start imports before its first line: the eager path launches our Triton kernels
as they are, and only the compile (in its own thread) defines them as torch ops, whose
``triton_op`` imports torch._inductor (~2 s of a start)."""

from __future__ import annotations

import pytest
import torch

from ishowtts.engines.f5 import fastdit, rope
from tests.triton_interpret import assert_passes_in_interpreter

pytest.importorskip("triton")

EAGER = """
import sys, torch
from ishowtts.engines.f5 import convkernel, engine, fastdit, fused, rope
y, b = torch.randn(1, 9, 32), torch.randn(32)
w = convkernel.pack_weight(torch.randn(32, 16, 5) * 0.1, 2)
fastdit.conv_mish_fused(y, w, b, 2)
cos, sin = rope.rope_tables(9, 32, torch.device("cpu"))
rope.rope_kernel(torch.randn(1, 9, 3, 2, 32), cos, sin, None)
assert "torch._inductor" not in sys.modules, "the eager path imported torch._inductor"
assert not hasattr(torch.ops.ishowtts, "conv_mish") and not hasattr(torch.ops.ishowtts, "rope_qk")
convkernel.register()
fused.register_rope()
assert hasattr(torch.ops.ishowtts, "conv_mish") and hasattr(torch.ops.ishowtts, "rope_qk")
print("ok")
"""


def test_the_engine_and_its_eager_kernels_leave_inductor_to_the_compile():
    assert_passes_in_interpreter(EAGER)


def test_compiled_functions_call_the_kernels_as_ops_and_the_eager_path_does_not():
    from tests.f5_tiny import tiny_cfm

    fast = fastdit.FastDiT(tiny_cfm().transformer)
    # As on CUDA with Triton (this CPU has neither the fused conv nor the RoPE kernel).
    fast.conv_fn, fast.rope = fastdit.conv_mish_fused, rope.rope_kernel
    fast.fuse = fast.fuse | {"rope"}
    twin = fast.twin(fast.compiled())
    assert (twin.conv_fn, twin.rope) == (fastdit.conv_mish_op, rope.rope_kernel_op)
    assert (fast.conv_fn, fast.rope) == (fastdit.conv_mish_fused, rope.rope_kernel)
    assert hasattr(torch.ops.ishowtts, "conv_mish") and hasattr(torch.ops.ishowtts, "rope_qk")
    fast.use(twin.compiled())
    assert (fast.conv_fn, fast.rope) == (fastdit.conv_mish_op, rope.rope_kernel_op)
    fast.uncompile()
    assert (fast.conv_fn, fast.rope) == (fastdit.conv_mish_fused, rope.rope_kernel)
    plain = fastdit.FastDiT(tiny_cfm().transformer, fused_conv=False, fuse=frozenset())
    plain.compile()
    assert (plain.conv_fn, plain.rope) == (fastdit.conv_mish, rope.rope_heads_major)
