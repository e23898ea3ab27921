"""Pipecat's faster-whisper service on the process's shared model, fed 16 kHz audio.

Three differences from ``WhisperSTTService``:
- the model comes from local/shared.py (pipecat loads one per service, 1–2.5 s and
  ~150 MB per call);
- a segment is resampled to the 16 kHz Whisper was trained on: pipecat hands it over
  at the pipeline's rate, and 8 kHz phone audio read as 16 kHz is unintelligible;
- decoding is greedy and without conditioning on previous text, passed in our own
  ``transcribe`` call (pipecat's uses beam search of 5, about twice as slow on CPU for
  the short utterances of a call at nearly the same accuracy). Nothing is bound onto
  the shared model, so a service holds the model and the model holds nothing back.

An agent with ``languages:`` has its utterances decoded in the language Whisper hears
among them (``listen_for``; see whisper_language.py); each transcription carries the
language it was decoded in, which switches the agent's persona (orchestration/languages.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import numpy as np
import soxr
from pipecat.frames.frames import ErrorFrame, Frame, InputAudioRawFrame, TranscriptionFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transcriptions.language import Language
from pipecat.utils.time import time_now_iso8601
from pipecat.utils.types import assert_given, require_given

from voxline.integrations.providers.local import shared
from voxline.integrations.providers.local.whisper_language import MIN_PROBABILITY, transcribe_detecting

WHISPER_RATE = 16000


def _as_language(code: str) -> Any:
    try:
        return Language(code)
    except ValueError:  # a Whisper code Pipecat has no name for
        return code


class LocalWhisperSTTService(WhisperSTTService):
    def __init__(self, *, beam_size: int = 1, cpu_threads: int = 0, num_workers: int = 1, **kwargs: Any):
        self._beam_size = beam_size
        self._cpu_threads = cpu_threads
        self._num_workers = num_workers
        self._audio_rate = 0  # the rate the caller's audio arrives at
        self._languages: list[str] = []  # detected among, when the agent speaks several
        self._min_probability = MIN_PROBABILITY
        self._current = ""  # the language the call is in now (the last one confidently heard)
        super().__init__(**kwargs)  # calls _load

    def listen_for(self, languages: list[str], min_probability: float = MIN_PROBABILITY,
                   current: str | None = None) -> None:
        """Decode each utterance in whichever of ``languages`` Whisper confidently hears
        in it, else in the call's current language (``current``, or the first of them)."""
        self._languages, self._min_probability = list(dict.fromkeys(languages)), min_probability
        self._current = current or (self._languages[0] if self._languages else "")

    def set_vocabulary(self, words: str) -> None:
        """Words this call is likely to hear (names, the agent's tools): faster-whisper's
        ``hotwords``, given to the decoder as preceding text."""
        self._settings.hotwords = words or None

    def _load(self) -> None:
        self._model = shared.whisper(
            require_given(self._settings.model, "Whisper model"), device=self._device,
            compute_type=self._compute_type, cpu_threads=self._cpu_threads, num_workers=self._num_workers,
        )
        unsupported = self._unsupported_language()
        if unsupported:
            raise ValueError(unsupported)

    def _transcribe(self, audio: bytes, rate: int) -> tuple[list[Any], Any]:
        """The segments, and the language they were decoded in."""
        samples = np.frombuffer(audio, dtype=np.int16).astype(np.float32) / 32768.0
        if rate and rate != WHISPER_RATE:
            samples = soxr.resample(samples, rate, WHISPER_RATE, quality="HQ").astype(np.float32)
        assert self._model is not None
        options = {"hotwords": assert_given(self._settings.hotwords),
                   "initial_prompt": assert_given(self._settings.initial_prompt),
                   "beam_size": self._beam_size, "condition_on_previous_text": False}
        if len(self._languages) > 1:
            heard = transcribe_detecting(self._model, samples, self._languages, self._current,
                                         self._min_probability, **options)
            self._current = heard.language  # the call goes on in it
            return heard.segments, _as_language(heard.language)
        language = assert_given(self._settings.language)
        segments, _ = self._model.transcribe(samples, language=language, **options)
        return list(segments), language  # decoding is lazy: consume it here, in the worker thread

    async def process_audio_frame(self, frame: InputAudioRawFrame, direction: FrameDirection) -> None:
        # Segments are raw bytes; what counts is the rate frames carry, whatever the
        # service was told.
        self._audio_rate = frame.sample_rate
        await super().process_audio_frame(frame, direction)

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        if not self._model:
            yield ErrorFrame("Whisper model not available")
            return
        await self.start_processing_metrics()
        segments, language = await asyncio.to_thread(self._transcribe, audio, self._audio_rate or self.sample_rate)
        threshold = assert_given(self._settings.no_speech_prob)
        text = "".join(f"{s.text} " for s in segments if threshold is None or s.no_speech_prob < threshold)
        await self.stop_processing_metrics()
        if text:
            await self._handle_transcription(text, True, language)  # type: ignore[arg-type]
            yield TranscriptionFrame(text, self._user_id, time_now_iso8601(), language)  # type: ignore[arg-type]
