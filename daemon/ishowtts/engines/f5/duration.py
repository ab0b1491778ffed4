"""DMOSpeech 2's learned speech length: text + reference mel → frames of new speech.

The model (``SpeechLengthPredictor`` in yl4579/DMOSpeech2, MIT) is a small encoder-decoder: a
post-norm transformer encoder over the token ids (reference transcript, a space, new text), a
causal post-norm transformer decoder over the reference mel frames that cross-attends to the
text, and a linear classifier at the last frame over length classes of 10 frames each. Its
answer is searched only within a window around the speaking-rate estimate (``window`` = 0.7:
from 0.7x to 1.7x), which keeps a confused model from producing absurd lengths.

Built from torch's own transformer layers with the reference's parameter names, so the
released ``model_1500.pt`` loads as is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

CLASS_FRAMES = 10  # one output class = 10 mel frames


def sinusoids(n: int, dim: int) -> Tensor:
    """``[n, dim]``: sin of position × frequency at even channels, cos at odd ones."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(n, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)
    return table


class DurationPredictor(nn.Module):
    pe: Tensor  # positional table, a (non-persistent) buffer

    def __init__(
        self,
        vocab_size: int = 2545,
        n_mel: int = 100,
        hidden: int = 512,
        text_layers: int = 4,
        cross_layers: int = 4,
        heads: int = 8,
        classes: int = 301,
        max_len: int = 4096,
    ) -> None:
        super().__init__()
        self.vocab_size, self.classes, self.max_len = vocab_size, classes, max_len
        # Index vocab_size is the batch padding token.
        self.text_embedder = nn.Embedding(vocab_size + 1, hidden, padding_idx=vocab_size)
        enc = nn.TransformerEncoderLayer(hidden, heads, hidden * 2, batch_first=True)
        self.text_encoder = nn.TransformerEncoder(enc, text_layers, enable_nested_tensor=False)
        self.mel_embedder = nn.Linear(n_mel, hidden)
        dec = nn.TransformerDecoderLayer(hidden, heads, hidden * 2, batch_first=True)
        self.decoder = nn.TransformerDecoder(dec, cross_layers)
        self.predictor = nn.Linear(hidden, classes)
        self.pe: Tensor
        self.register_buffer("pe", sinusoids(max_len, hidden), persistent=False)

    def forward(self, text_ids: Tensor, mel: Tensor) -> Tensor:
        """Length logits ``[B, M, classes]`` for token ids ``[B, L]`` and mel ``[B, M, n_mel]``
        (each mel frame predicts the remaining length from the frames up to it)."""
        if text_ids.shape[1] > self.max_len or mel.shape[1] > self.max_len:
            raise ValueError(f"duration predictor input longer than {self.max_len}")
        text = self.text_embedder(text_ids) + self.pe[: text_ids.shape[1]]
        memory = self.text_encoder(text)
        frames = self.mel_embedder(mel) + self.pe[: mel.shape[1]]
        causal = torch.ones(mel.shape[1], mel.shape[1], dtype=torch.bool, device=mel.device)
        out = self.decoder(frames, memory, tgt_mask=causal.triu(1))
        return self.predictor(out)

    @torch.no_grad()
    def frames(
        self, tokens: Tensor, ref_mel: Tensor, rate_frames: int, window: float = 0.7
    ) -> int | None:
        """New-speech frames for one request: ``tokens [L]`` (reference transcript, space, new
        text), ``ref_mel [M, n_mel]``, the speaking-rate estimate in frames. The most likely
        class within ``[0.7, 1.7) x`` the estimate; None when that window holds no class (an
        estimate under 10 frames or past the last class): the caller keeps its estimate."""
        est = rate_frames // CLASS_FRAMES
        lo, hi = max(int(est * window), 0), min(int(est * (1 + window)), self.classes)
        if hi <= lo:
            return None
        dev = self.predictor.weight.device
        ids = tokens.to(dev, torch.long)[None]
        mel = ref_mel.to(dev, self.predictor.weight.dtype)[None]
        logits = self.forward(ids, mel)[0, -1, lo:hi].float()
        return (lo + int(logits.argmax())) * CLASS_FRAMES


def read(path: Path, device: torch.device) -> DurationPredictor:
    """A predictor from a DMOSpeech2 checkpoint (``model_state_dict``), its sizes read from
    the weights (the head count is not stored: the reference's 8)."""
    raw = torch.load(str(path), map_location="cpu", weights_only=True)
    state = raw.get("model_state_dict", raw) if isinstance(raw, Mapping) else None
    if not isinstance(state, Mapping) or "text_embedder.weight" not in state:
        raise ValueError(f"{path}: not a DMOSpeech2 duration predictor checkpoint")
    state = {k.removeprefix("module."): v for k, v in state.items()}

    def layers(prefix: str) -> int:
        found = {int(m.group(1)) for k in state if (m := re.match(rf"{prefix}\.(\d+)\.", k))}
        return max(found) + 1 if found else 0

    emb = state["text_embedder.weight"]
    model = DurationPredictor(
        vocab_size=emb.shape[0] - 1,
        n_mel=state["mel_embedder.weight"].shape[1],
        hidden=emb.shape[1],
        text_layers=layers("text_encoder.layers"),
        cross_layers=layers("decoder.layers"),
        classes=state["predictor.weight"].shape[0],
    )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{path}: does not fit the duration predictor: {str(exc)[:300]}") from None
    return model.eval().requires_grad_(False).to(device)
