"""espeak-ng as a Pipecat TTS service: instant and robotic, the fallback when Piper is absent.

Runs the ``espeak-ng`` program (Debian package ``espeak-ng``) and streams its raw
16-bit output; there is no Python binding worth a dependency for this.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from pipecat.frames.frames import ErrorFrame, Frame
from pipecat.services.tts_service import TTSService

from voxline.errors import ModelMissingError

ESPEAK_SAMPLE_RATE = 22050


def espeak_binary() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise ModelMissingError("espeak-ng is not installed: apt-get install espeak-ng")
    return path


class EspeakTTSService(TTSService):
    def __init__(self, *, voice: str = "en-us", words_per_minute: int = 175, **kwargs: Any):
        super().__init__(push_start_frame=True, push_stop_frames=True, **kwargs)
        self._binary = espeak_binary()
        self._voice = voice
        self._wpm = words_per_minute

    def can_generate_metrics(self) -> bool:
        return True

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        process = await asyncio.create_subprocess_exec(
            self._binary, "--stdout", "-v", self._voice, "-s", str(self._wpm), text,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        assert process.stdout is not None

        async def chunks() -> AsyncIterator[bytes]:
            assert process.stdout is not None
            while chunk := await process.stdout.read(8192):
                yield chunk

        try:
            await self.start_tts_usage_metrics(text)
            async for frame in self._stream_audio_frames_from_iterator(
                chunks(), strip_wav_header=True, context_id=context_id
            ):
                await self.stop_ttfb_metrics()
                yield frame
            if await process.wait() != 0:
                yield ErrorFrame(error=f"espeak-ng exited with {process.returncode}")
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            await self.stop_ttfb_metrics()
