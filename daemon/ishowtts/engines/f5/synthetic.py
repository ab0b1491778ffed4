"""Random-weight DMOSpeech2 files in the released layouts, so tests and benchmarks run without
the hub: a student checkpoint (``model_state_dict`` of the student under
``feedforward_model.*``, the teacher under ``guidance_model.real_unet.*`` when asked, and the
mel ``scale``) and a duration predictor checkpoint. Same compute as the trained models at full
size; meaningless audio. ``tools/make_student.py`` is the command line."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from . import loader, upstream
from .duration import DurationPredictor
from .upstream import UpstreamModule


def random_student(
    arch: Mapping[str, Any] | None = None, seed: int = 0, std: float = 0.02
) -> UpstreamModule:
    """A CFM around a v0 F5 DiT (the student's architecture; ``arch`` overrides it), every
    layer random (upstream's zero-initialised ones included)."""
    torch.manual_seed(seed)
    vocab = upstream.load_vocab(str(upstream.vocab_path()))
    cfm = loader.build_cfm(loader.STUDENT_MODEL, dict(arch or {}), vocab)
    loader.randomise(cfm, seed=seed, std=std)
    return cfm.eval()


def save_student(
    cfm: UpstreamModule, path: Path, scale: float, teacher: UpstreamModule | None = None
) -> Path:
    """Write ``cfm``'s DiT as a DMOSpeech2 checkpoint (a ``.pt``), with ``teacher``'s DiT
    (another ``random_student``, so the two differ) for the teacher-guided start."""
    state: dict[str, torch.Tensor] = {}
    for prefix, model in ((loader.STUDENT_PREFIX, cfm), (loader.TEACHER_PREFIX, teacher)):
        if model is not None:
            dit = model.transformer
            assert isinstance(dit, torch.nn.Module)
            state.update({prefix + k: v.clone() for k, v in dit.state_dict().items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_state_dict": state, "scale": float(scale), "step": 1}, str(path))
    return path


def random_predictor(seed: int = 0, **sizes: int) -> DurationPredictor:
    torch.manual_seed(seed)
    return DurationPredictor(**sizes).eval()


def save_predictor(model: DurationPredictor, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_state_dict": model.state_dict(), "step": 1}, str(path))
    return path
