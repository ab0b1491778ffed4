"""Voice activity: Silero VAD on 32 ms frames, and the streamer's turns from its probabilities.

Silero VAD (the ``silero-vad`` package, which ships the model) is run through onnxruntime on one
CPU thread: about 0.2 ms a frame, 0.7 % of a core, and 80 MB for the listening process, where
the package's own torch loader costs 500 MB and sets torch's thread count when imported.
Docs: docs/listen.md.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
FRAME = 512  # samples Silero takes per step at 16 kHz: 32 ms
FRAME_S = FRAME / SAMPLE_RATE
CONTEXT = 64  # samples of the previous frame the model sees before each new one
MODEL = "silero_vad/data/silero_vad.onnx"


class VadUnavailable(RuntimeError):
    """The VAD cannot run here (its package or runtime missing, the model unreadable)."""


def model_path() -> Path:
    """The ONNX model inside the installed silero-vad package, found from its metadata: the
    package is not imported (its ``__init__`` imports torch)."""
    try:
        dist = metadata.distribution("silero-vad")
    except metadata.PackageNotFoundError:
        raise VadUnavailable("silero-vad is not installed (pip install silero-vad)") from None
    path = Path(str(dist.locate_file(MODEL)))
    if not path.is_file():
        raise VadUnavailable(f"silero-vad {dist.version} has no {MODEL}")
    return path


class SileroVad:
    """One stream's speech probability, frame by frame (the model is recurrent: keep order)."""

    def __init__(self, path: Path | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise VadUnavailable(f"onnxruntime is not installed: {exc}") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # a 32 ms frame is far too small to split
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # errors only: its warnings are not ours to act on
        try:
            self._session = ort.InferenceSession(
                str(path or model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own types for a bad file
            raise VadUnavailable(f"cannot load the Silero VAD model: {exc}") from None
        self._rate = np.array(SAMPLE_RATE, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._input = np.zeros((1, CONTEXT + FRAME), dtype=np.float32)

    def __call__(self, frame: np.ndarray) -> float:
        """The probability (0-1) that ``frame`` (FRAME float32 samples at 16 kHz) is speech."""
        x = self._input
        x[0, :CONTEXT] = x[0, FRAME:]  # the last samples of the previous frame
        x[0, CONTEXT:] = frame
        prob, self._state = self._session.run(
            None, {"input": x, "state": self._state, "sr": self._rate}
        )
        return float(prob[0, 0])


class Turns:
    """Speech probabilities in, the streamer's turns out. A turn starts once ``min_speech_s``
    of frames in a row reach ``threshold``, and ends after ``quiet_s`` of frames below
    ``threshold - 0.15`` (Silero's own hysteresis: a soft syllable does not end a turn)."""

    def __init__(self, threshold: float, min_speech_s: float, quiet_s: float) -> None:
        self.threshold = threshold
        self.low = max(threshold - 0.15, 0.01)
        self.min_speech_s = max(min_speech_s, FRAME_S)
        self.quiet_s = quiet_s
        self.speaking = False
        self._speech = 0.0  # seconds of speech in a row, before a turn starts
        self._quiet = 0.0  # seconds of quiet in a row, during a turn

    def feed(self, prob: float) -> bool | None:
        """One frame's probability: True when a turn starts, False when it ends, else None."""
        eps = 1e-9
        if not self.speaking:
            self._speech = self._speech + FRAME_S if prob >= self.threshold else 0.0
            if self._speech + eps >= self.min_speech_s:
                self.speaking, self._quiet = True, 0.0
                return True
            return None
        self._quiet = self._quiet + FRAME_S if prob < self.low else 0.0
        if self._quiet + eps >= self.quiet_s:
            self.speaking, self._speech = False, 0.0
            return False
        return None
