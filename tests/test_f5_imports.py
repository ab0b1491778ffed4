"""What an F5 start imports before it needs it: our Triton kernels become torch ops
(``triton_op``, which imports torch._inductor, ~2 s) only when a model takes the fused path,
so config validation (the engine's Options), the fallback voice and a CPU run never pay it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.triton_interpret import assert_passes_in_interpreter

pytest.importorskip("triton")

CHECK = """
import sys, torch
from ishowtts.engines.f5 import convkernel, engine, fused
assert "torch._inductor" not in sys.modules, "importing the engine imported torch._inductor"
assert not hasattr(torch.ops.ishowtts, "conv_mish") and not hasattr(torch.ops.ishowtts, "rope_qk")
convkernel.register()
fused.register_rope()
assert hasattr(torch.ops.ishowtts, "conv_mish") and hasattr(torch.ops.ishowtts, "rope_qk")
print("ok")
"""


def test_the_engine_leaves_inductor_until_a_fused_kernel_is_defined():
    assert_passes_in_interpreter(CHECK)


BUILD = """
import sys
from tests.f5_tiny import tiny_cfm
tiny_cfm()  # through upstream's classes, as a load builds the model
for heavy in ("torch._dynamo", "torch._inductor", "sympy"):
    assert heavy not in sys.modules, f"building the model imported {heavy}"
from x_transformers import x_transformers as xt
import torch
pos = xt.einx.subtract("i, j -> i j", torch.arange(3), torch.arange(2))  # einx, once asked for
assert pos.tolist() == [[0, -1], [1, 0], [2, 1]], pos
import einx
assert einx.subtract is xt.einx.subtract and "torch._dynamo" in sys.modules
print("ok")
"""


def test_building_the_model_leaves_dynamo_and_einx_until_used():
    run = subprocess.run([sys.executable, "-c", BUILD], capture_output=True, text=True,
                         timeout=300, cwd=Path(__file__).parent.parent)  # fmt: skip
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-3000:]
