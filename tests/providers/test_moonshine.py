"""Moonshine base-en, as the STT benchmark runs it: real recorded speech, loaded once."""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from tests.phone.live_kit import librivox_clips, wer
from voxline.integrations.providers.local import manifest, shared
from voxline.integrations.providers.local.moonshine import read_tokenizer


def test_the_tokenizer_file_reads_whole():
    tokens = read_tokenizer(manifest.resolve("moonshine-base-en") / "tokenizer.bin")
    assert len(tokens) == 32000 and tokens[:3] == [b"<unk>", b"<s>", b"</s>"]


@pytest.mark.models
def test_moonshine_hears_recorded_phone_speech():
    model = shared.moonshine(str(manifest.resolve("moonshine-base-en")))
    assert shared.moonshine(str(manifest.resolve("moonshine-base-en"))) is model
    errors = words = 0
    for clip in librivox_clips():  # 8 kHz phone audio, as a call hears it
        samples = np.frombuffer(clip.pcm, np.int16).astype(np.float32) / 32768.0
        heard = model.transcribe(soxr.resample(samples, 8000, 16000).astype(np.float32))
        errors += wer(clip.text, heard) * len(clip.text.split())
        words += len(clip.text.split())
    assert errors / words < 0.08, errors / words  # 1.4 % measured
    assert model.transcribe(np.zeros(800, np.float32)) == ""  # 50 ms: nothing said
