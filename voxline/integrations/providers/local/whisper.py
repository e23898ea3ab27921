"""Pipecat's faster-whisper service, with the decoding options a phone call wants.

Pipecat calls ``WhisperModel.transcribe`` with faster-whisper's defaults (beam search
of 5). Greedy decoding is about twice as fast on CPU for the short utterances of a
call at nearly the same accuracy, and pipecat offers no option for it, so the loaded
model's ``transcribe`` gets our defaults bound in.
"""

from __future__ import annotations

import functools
from typing import Any

from pipecat.services.whisper.stt import WhisperSTTService


class LocalWhisperSTTService(WhisperSTTService):
    def __init__(self, *, beam_size: int = 1, **kwargs: Any):
        self._beam_size = beam_size
        super().__init__(**kwargs)

    def _load(self) -> None:
        super()._load()
        model = self._model
        model.transcribe = functools.partial(  # type: ignore[method-assign]
            model.transcribe, beam_size=self._beam_size, condition_on_previous_text=False
        )
