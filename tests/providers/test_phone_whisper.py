"""Whisper on a phone line: 8 kHz μ-law speech of a real person, through a real pipeline.

Pipecat's Whisper service reads whatever rate the pipeline runs at as 16 kHz; ours
resamples first. Read at the wrong rate the same clips came out at WER 0.68.
"""

from __future__ import annotations

import pytest

from tests.providers.kit import librivox, phone_line, transcribe_in_pipeline, wer
from voxline.integrations.providers.registry import build_stt
from voxline.spec import STTBlock


def test_wer_counts_word_edits():
    assert wer("he was not an ill disposed young man", "He was not an ill-disposed young man.") == 0
    assert wer("a b c d", "a x c") == 0.5


@pytest.mark.models
async def test_whisper_understands_8khz_mulaw_phone_speech():
    clips = librivox()
    assert len(clips) >= 3
    errors = words = 0
    for samples, rate, truth in clips:
        stt = build_stt(STTBlock(), "en", sample_rate=8000)  # a phone call's services
        heard = await transcribe_in_pipeline(stt, phone_line(samples, rate), 8000)
        n = len(truth.split())
        errors += round(wer(truth, heard) * n)
        words += n
    assert errors / words <= 0.15, (errors, words)


@pytest.mark.models
@pytest.mark.parametrize("told", [None, 16000])
async def test_whisper_resamples_from_the_rate_the_audio_arrives_at(told):
    samples, rate, truth = librivox()[1]  # "he was not an ill disposed young man"
    stt = build_stt(STTBlock(), "en", sample_rate=told)  # None: the pipeline's
    heard = await transcribe_in_pipeline(stt, phone_line(samples, rate), 8000)
    assert wer(truth, heard) <= 0.15, heard
