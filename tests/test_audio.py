"""Audio in every format: converted, never rejected."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from voxline.audio import read_wav, synthesize, transcribe
from voxline.errors import VoxlineError


def test_stereo_44k_is_resampled_to_mono_16k(tmp_path):
    t = np.linspace(0, 1, 44100, endpoint=False)
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    sf.write(tmp_path / "stereo.wav", np.stack([tone, tone], axis=1), 44100)
    pcm = np.frombuffer(read_wav(tmp_path / "stereo.wav", 16000), dtype=np.int16)
    assert abs(len(pcm) - 16000) <= 2
    spectrum = np.abs(np.fft.rfft(pcm))
    assert abs(np.argmax(spectrum) - 440) <= 2  # same pitch after resampling


def test_empty_and_silent_audio_transcribe_to_nothing(tmp_path):
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.int16), 16000)
    assert read_wav(tmp_path / "empty.wav") == b""
    assert transcribe(b"") == ""
    assert transcribe(bytes(32000)) == ""


def test_unreadable_audio_is_a_clear_error(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"not a wav at all")
    with pytest.raises(VoxlineError, match="cannot read audio"):
        read_wav(tmp_path / "bad.wav")


@pytest.mark.models
def test_local_tts_and_stt_round_trip():
    pcm = synthesize("Please book a table for two people.")
    text = transcribe(pcm).lower()
    assert "table" in text and "two" in text or "2" in text
