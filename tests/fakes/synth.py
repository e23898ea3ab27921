"""Real PCM for the TTS fakes, with per-character timings like a vendor's alignment.

`tone` (default) is instant and deterministic: one short tone per letter (its pitch
follows the letter), silence for spaces and punctuation. `espeak` runs espeak-ng for
intelligible speech (for tests that transcribe what was "said") and spreads the
characters evenly over it.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from dataclasses import dataclass

import numpy as np

LETTER_SECS = 0.06
SPACE_SECS = 0.03
PAUSE_SECS = 0.12  # after . , ? ! ; :


@dataclass
class Speech:
    pcm: bytes  # int16 mono, little-endian
    sample_rate: int
    chars: list[str]
    starts: list[float]  # seconds from the start of `pcm`
    ends: list[float]


def synthesize(text: str, sample_rate: int, voice: str = "tone") -> Speech:
    if voice == "espeak":
        return _espeak(text, sample_rate)
    parts: list[np.ndarray] = []
    chars, starts, ends = list(text), [], []
    t = 0.0
    for ch in text:
        secs = SPACE_SECS if ch.isspace() else PAUSE_SECS if ch in ".,?!;:" else LETTER_SECS
        n = int(round(secs * sample_rate))
        if ch.isalnum():
            freq = 180.0 + 12.0 * (ord(ch.lower()) % 32)
            k = np.arange(n)
            fade = np.minimum(1.0, np.minimum(k, n - 1 - k) / (0.005 * sample_rate))
            parts.append(0.3 * fade * np.sin(2 * np.pi * freq * k / sample_rate))
        else:
            parts.append(np.zeros(n))
        starts.append(t)
        t += n / sample_rate
        ends.append(t)
    samples = np.concatenate(parts) if parts else np.zeros(0)
    return Speech((samples * 32767).astype("<i2").tobytes(), sample_rate, chars, starts, ends)


def _espeak(text: str, sample_rate: int) -> Speech:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed")
    out = subprocess.run([exe, "--stdout", text], check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(out)) as w:
        rate, raw = w.getframerate(), w.readframes(w.getnframes())
    if rate != sample_rate:
        import soxr

        raw = soxr.resample(np.frombuffer(raw, "<i2"), rate, sample_rate).astype("<i2").tobytes()
    secs = len(raw) / 2 / sample_rate
    step = secs / max(1, len(text))
    return Speech(raw, sample_rate, list(text), [i * step for i in range(len(text))],
                  [(i + 1) * step for i in range(len(text))])


def chunks(speech: Speech, chunk_secs: float = 0.2) -> list[tuple[bytes, int, int]]:
    """Split into (pcm, first_char, end_char) pieces of about `chunk_secs`, cut at
    character boundaries, so each piece carries the alignment of its own characters."""
    out: list[tuple[bytes, int, int]] = []
    first = 0
    for i in range(len(speech.chars)):
        if speech.ends[i] - speech.starts[first] >= chunk_secs or i == len(speech.chars) - 1:
            a = int(round(speech.starts[first] * speech.sample_rate)) * 2
            b = len(speech.pcm) if i == len(speech.chars) - 1 else int(round(speech.ends[i] * speech.sample_rate)) * 2
            out.append((speech.pcm[a:b], first, i + 1))
            first = i + 1
    return out


def to_ulaw(pcm: bytes) -> bytes:
    import audioop

    return audioop.lin2ulaw(pcm, 2)


def parse_output_format(fmt: str) -> tuple[str, int] | None:
    """ElevenLabs-style `pcm_16000` / `ulaw_8000` → (codec, rate); None if unsupported here."""
    codec, _, rate = fmt.partition("_")
    if codec in ("pcm", "ulaw") and rate.isdigit():
        return codec, int(rate)
    return None
