"""What an F5 start imports before it needs it: nothing on the way to the first line imports
torch._inductor or torch._dynamo (with sympy: ~5 s on the H200 host; our kernels run as plain
launches eagerly, as custom ops only in compiled code), einx or librosa's numba stack; the
compile imports what it needs later."""

from __future__ import annotations

import pytest

from tests.scripts import assert_passes_in_interpreter, assert_script_passes

pytest.importorskip("triton")

CHECK = """
import sys, torch
from ishowtts.engines.f5 import convkernel, engine, fused, rope
assert hasattr(torch.ops.ishowtts, "conv_mish") and hasattr(torch.ops.ishowtts, "rope_qk")
assert "torch._inductor" not in sys.modules, "importing the engine imported torch._inductor"
# The eager path launches the kernels as they are ...
y, w, b = torch.randn(1, 9, 32), torch.randn(32, 16, 5) * 0.1, torch.randn(32)
conv = convkernel.conv_mish(y, convkernel.pack_weight(w, 2), b)
cos, sin = rope.rope_tables(9, 32, torch.device("cpu"))
q, k, v = rope.rope_kernel_launched(torch.randn(1, 9, 3, 2, 32), cos, sin, None)
gelu = fused.linear_gelu(torch.randn(4, 8), torch.randn(16, 8), torch.randn(16))
assert conv.shape == (1, 9, 32) and q.shape == (1, 2, 9, 32) and gelu.shape == (4, 16)
assert "torch._dynamo" not in sys.modules, "an eager launch imported torch._dynamo"
# ... for a custom op's first call imports torch._dynamo (seconds on a slow host)
torch.ops.ishowtts.conv_mish(y, convkernel.pack_weight(w, 2), b)
assert "torch._dynamo" in sys.modules
print("ok")
"""


def test_the_eager_path_needs_neither_inductor_nor_dynamo():
    assert_passes_in_interpreter(CHECK)


BUILD = """
import sys
from tests.f5_tiny import tiny_cfm
tiny_cfm()  # through upstream's classes, as a load builds the model
import inspect
inspect.getmodule(sys._getframe())  # walks sys.modules, reading each one's __file__ (pydantic)
for heavy in ("torch._dynamo", "torch._inductor", "sympy", "numba"):
    assert heavy not in sys.modules, f"building the model imported {heavy}"
from f5_tts.model import modules
fb = modules.librosa_mel_fn(sr=24000, n_fft=1024, n_mels=100, fmin=0, fmax=12000)  # once asked
assert fb.shape == (100, 513) and "numba" in sys.modules, fb.shape
import librosa.filters
assert librosa.filters.mel is not modules.librosa_mel_fn and librosa.filters.__file__
from x_transformers import x_transformers as xt
import torch
pos = xt.einx.subtract("i, j -> i j", torch.arange(3), torch.arange(2))  # einx, once asked for
assert pos.tolist() == [[0, -1], [1, 0], [2, 1]], pos
import einx
assert einx.subtract is xt.einx.subtract and "torch._dynamo" in sys.modules
print("ok")
"""


def test_building_the_model_leaves_dynamo_einx_and_librosa_until_used():
    assert_script_passes(BUILD, timeout=300)
