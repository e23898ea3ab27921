"""Audio utilities: read any WAV as 16-bit mono at a given rate, synthesize a caller's
voice with the local TTS, and transcribe audio with the local Whisper.

Wrong sample rates and stereo are converted (soxr resampling, channel mean), never
rejected: callers' recordings come in every format.
"""

from __future__ import annotations

import asyncio
import functools
import io
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from voxline.errors import ModelMissingError, VoxlineError


def to_pcm16(samples: np.ndarray, rate: int, target_rate: int) -> bytes:
    """Float or int samples (frames × channels, or mono) → 16-bit mono PCM at target_rate."""
    data = samples.astype(np.float32)
    if np.issubdtype(samples.dtype, np.integer):
        data /= float(np.iinfo(samples.dtype).max)
    if data.ndim == 2:
        data = data.mean(axis=1)
    if rate != target_rate and data.size:
        data = soxr.resample(data, rate, target_rate)
    return (np.clip(data, -1.0, 1.0) * 32767).astype(np.int16).tobytes()


def read_wav(path: str | Path, target_rate: int = 16000) -> bytes:
    try:
        samples, rate = sf.read(str(path), dtype="float32", always_2d=False)
    except (OSError, RuntimeError, sf.LibsndfileError) as e:
        raise VoxlineError(f"cannot read audio {path}: {e}") from None
    return to_pcm16(samples, rate, target_rate)


def write_wav(path: str | Path, pcm: bytes, rate: int) -> None:
    sf.write(str(path), np.frombuffer(pcm, dtype=np.int16), rate, subtype="PCM_16")


@functools.cache
def _piper_voice() -> Any:
    from voxline.integrations.providers.local import shared
    from voxline.integrations.providers.local.manifest import resolve

    root = resolve("piper-en-us")
    return shared.piper_voice(next(root.glob("*.onnx")))  # the agent's own copy, if loaded


def synthesize(text: str, target_rate: int = 16000) -> bytes:
    """Speak ``text`` with Piper if installed, else espeak-ng; 16-bit mono PCM."""
    try:
        voice = _piper_voice()
    except (ImportError, ModelMissingError):
        voice = None
    if voice is not None:
        from piper import SynthesisConfig

        # No generator noise: the same text gives the same audio, so scenarios repeat.
        config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
        pcm = b"".join(chunk.audio_int16_bytes for chunk in voice.synthesize(text, config))
        return to_pcm16(np.frombuffer(pcm, dtype=np.int16), voice.config.sample_rate, target_rate)
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise ModelMissingError("no local TTS: install voxline[piper] or espeak-ng")
    wav = subprocess.run([espeak, "--stdout", text], capture_output=True, check=True).stdout
    samples, rate = sf.read(io.BytesIO(wav), dtype="int16")
    return to_pcm16(samples, rate, target_rate)


@functools.cache
def _whisper() -> Any:
    from voxline.integrations.providers.local import shared
    from voxline.integrations.providers.local.manifest import resolve

    return shared.whisper(resolve("whisper-base"))  # the agent's own copy, if loaded


def transcribe(pcm: bytes, rate: int = 16000) -> str:
    """Transcribe 16-bit mono PCM with the local Whisper (used to check what callers heard)."""
    if not pcm:
        return ""
    audio = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
    if rate != 16000:
        audio = soxr.resample(audio, rate, 16000)
    if np.abs(audio).max(initial=0) < 0.01:
        return ""
    segments, _ = _whisper().transcribe(audio, language="en", beam_size=1, vad_filter=False)
    return " ".join(s.text.strip() for s in segments).strip()


async def transcribe_async(pcm: bytes, rate: int = 16000) -> str:
    return await asyncio.to_thread(transcribe, pcm, rate)
