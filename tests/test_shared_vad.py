"""The shared Silero VAD: long silence skips the network, speech still runs it."""

from __future__ import annotations

import numpy as np

from voxline.audio import synthesize
from voxline.integrations.providers.local.silero import SETTLE_WINDOWS, SharedSileroVADAnalyzer


def test_silence_is_quiet_without_inference_and_speech_is_heard():
    vad = SharedSileroVADAnalyzer()
    vad.set_sample_rate(16000)  # as the pipeline does at start
    calls = 0
    real_model = vad._model

    def counting(audio, rate):
        nonlocal calls
        calls += 1
        return real_model(audio, rate)

    vad._model = counting
    for _ in range(SETTLE_WINDOWS):  # the start of a silence still settles the model
        vad.voice_confidence(bytes(1024))
    assert calls == SETTLE_WINDOWS
    for _ in range(50):  # the rest of it costs nothing
        assert vad.voice_confidence(bytes(1024)) == 0.0
    assert calls == SETTLE_WINDOWS
    speech = np.frombuffer(synthesize("Hello, I would like to book a table."), dtype=np.int16)
    chunk = 512
    peak = max(vad.voice_confidence(speech[i:i + chunk].tobytes())
               for i in range(0, len(speech) - chunk, chunk))
    assert calls > 0 and peak > 0.7
