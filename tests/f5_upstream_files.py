"""Checkpoint files written by upstream f5-tts's own code, on tiny random models: its Trainer
(``save_checkpoint`` after one real training step, EMA by ema_pytorch), and the finetune app's
``prune_checkpoint`` and ``expand_model_embeddings``. The formats are the real ones, not
guesses. The finetune app's module cannot be imported without its data folder and gradio, so
its two functions are taken from its source file, unchanged, and run on their own."""

from __future__ import annotations

import ast
import os
import random
from pathlib import Path
from typing import Any

import torch

from ishowtts.engines.f5 import upstream


def trainer_checkpoint(cfm: torch.nn.Module, directory: Path, last: bool = False) -> Any:
    """Three training steps of ``cfm`` by upstream's Trainer, saved as ``model_3.pt`` (or
    ``model_last.pt``); returns the Trainer (its model and EMA hold what was saved)."""
    from torch.optim.lr_scheduler import LinearLR

    upstream.classes()  # registers the light f5_tts.model package first
    from f5_tts.model.trainer import Trainer

    cfm.train()
    trainer = Trainer(
        cfm,
        epochs=1,
        learning_rate=1e-3,
        num_warmup_updates=1,
        checkpoint_path=str(directory),
        logger=None,
        # EMA from the first step on, so the EMA and the trained weights differ
        ema_kwargs={"update_after_step": 0, "update_every": 1},
    )
    trainer.scheduler = LinearLR(trainer.optimizer, start_factor=1e-8, end_factor=1.0,
                                 total_iters=1)  # fmt: skip
    torch.manual_seed(0)
    mel = torch.randn(2, 48, 100)
    # ema_pytorch copies the model at its first two updates (warm-up decay 0): three steps
    for _ in range(3):
        loss, _, _ = trainer.model(mel, text=["hello there", "ni hao"], lens=torch.tensor([48, 40]))
        trainer.accelerator.backward(loss)
        trainer.optimizer.step()
        trainer.scheduler.step()
        trainer.optimizer.zero_grad()
        trainer.ema_model.update()
    trainer.save_checkpoint(3, last=last)
    cfm.eval()
    return trainer


def _finetune_functions() -> dict[str, Any]:
    source_file = upstream.package_dir() / "train" / "finetune_gradio.py"
    tree = ast.parse(source_file.read_text(encoding="utf-8"))
    wanted = {"prune_checkpoint", "expand_model_embeddings"}
    body = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in wanted]
    assert {n.name for n in body} == wanted, "upstream renamed its finetune functions"
    from safetensors.torch import load_file, save_file

    namespace: dict[str, Any] = {"torch": torch, "os": os, "random": random,
                                 "load_file": load_file, "save_file": save_file}  # fmt: skip
    exec(compile(ast.Module(body=body, type_ignores=[]), str(source_file), "exec"), namespace)
    return namespace


def prune(src: Path, dst: Path, save_ema: bool = True, safetensors: bool = False) -> Path:
    """Upstream's "reduce checkpoint" (finetune app): EMA-only (or trained-only) weights."""
    message = _finetune_functions()["prune_checkpoint"](str(src), str(dst), save_ema, safetensors)
    assert message.startswith("New checkpoint saved at: "), message
    return Path(message.removeprefix("New checkpoint saved at: "))


def expand_vocab(src: Path, dst: Path, new_tokens: int) -> int:
    """Upstream's vocab extension for finetuning: ``new_tokens`` more text embedding rows."""
    return int(_finetune_functions()["expand_model_embeddings"](str(src), str(dst), new_tokens))
