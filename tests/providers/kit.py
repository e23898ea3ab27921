"""Helpers for provider tests: real speech with its transcript, phone-line audio, WER,
and a transcription through a real Pipecat pipeline."""

from __future__ import annotations

import audioop
import re
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from pipecat.frames.frames import (
    InputAudioRawFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.worker import PipelineParams
from pipecat.tests.utils import run_test

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def librivox() -> list[tuple[np.ndarray, int, str]]:
    """(float samples, rate, transcript) of each LibriVox clip pocketsphinx-testdata ships."""
    clips = []
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        m = re.match(r"<s> (.*) </s> \((.*)\)", line.strip())
        if m:
            samples, rate = sf.read(LIBRIVOX / f"{m.group(2)}.wav", dtype="float32")
            clips.append((samples, rate, m.group(1)))
    return clips


def phone_line(samples: np.ndarray, rate: int) -> bytes:
    """What a caller's voice becomes on the phone: 8 kHz G.711 μ-law, back to 16-bit PCM."""
    narrow = soxr.resample(samples, rate, 8000)
    pcm = (np.clip(narrow, -1, 1) * 32767).astype(np.int16).tobytes()
    return audioop.ulaw2lin(audioop.lin2ulaw(pcm, 2), 2)


_ABBREVIATIONS = {"mr": "mister", "mrs": "missus"}


def words(text: str) -> list[str]:
    text = re.sub(r"[^a-z' ]", " ", text.lower().replace("-", " "))
    return [_ABBREVIATIONS.get(w, w) for w in text.replace("'", "").split()]


def wer(reference: str, hypothesis: str) -> float:
    ref, hyp = words(reference), words(hypothesis)
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return d[len(hyp)] / max(len(ref), 1)


async def transcribe_in_pipeline(stt: object, pcm: bytes, rate: int, *, frame_ms: int = 20) -> str:
    """Send ``pcm`` as one utterance between VAD events through ``stt`` in a pipeline at ``rate``."""
    step = rate * frame_ms // 1000 * 2
    audio = [InputAudioRawFrame(audio=pcm[i:i + step], sample_rate=rate, num_channels=1)
             for i in range(0, len(pcm), step)]
    frames = [VADUserStartedSpeakingFrame(), *audio, VADUserStoppedSpeakingFrame()]
    down, _ = await run_test(stt, frames_to_send=frames,  # type: ignore[arg-type]
                             pipeline_params=PipelineParams(audio_in_sample_rate=rate))
    return " ".join(f.text.strip() for f in down if isinstance(f, TranscriptionFrame))
