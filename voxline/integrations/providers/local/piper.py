"""Pipecat's Piper service on the process's shared voice.

``PiperTTSService`` loads its voice in its constructor (~0.2 s and ~60 MB per call);
synthesis itself (its ``run_tts``) only reads ``self._voice``, so this subclass sets
that from local/shared.py and skips the load. Piper is GPL-3.0 and an optional extra:
import this module only when the ``piper`` package is installed.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from pipecat.frames.frames import Frame, TTSAudioRawFrame
from pipecat.services.piper.tts import PiperTTSService
from pipecat.services.tts_service import TTSService

from voxline.integrations.providers.local import shared
from voxline.integrations.providers.local.voice_first import VOICE_FIRST


class SharedPiperTTSService(PiperTTSService):
    def __init__(self, *, voice_path: Path, settings: PiperTTSService.Settings | None = None,
                 **kwargs: Any) -> None:
        store = self.Settings(model=None, voice=Path(voice_path).stem, language=None)
        if settings is not None:
            store.apply_update(settings)
        # PiperTTSService.__init__ would load the voice again: set up its parent instead.
        TTSService.__init__(self, push_start_frame=True, push_stop_frames=True, settings=store, **kwargs)
        self._voice = shared.piper_voice(voice_path)
        self._voiced: str | None = None  # the answer (TTS context) whose first audio exists

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        if context_id == self._voiced:
            async for frame in super().run_tts(text, context_id):
                yield frame
            return
        # An answer's first clause: the local LLM waits until its first audio exists.
        hold = VOICE_FIRST.begin()
        try:
            async for frame in super().run_tts(text, context_id):
                if isinstance(frame, TTSAudioRawFrame) and self._voiced != context_id:
                    self._voiced = context_id
                    VOICE_FIRST.end(hold)
                yield frame
        finally:
            VOICE_FIRST.end(hold)
