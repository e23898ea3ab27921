"""Optional two-channel call recording: caller on the left, agent on the right,
and the consent sentence said before the greeting.

Built on pipecat's ``AudioBufferProcessor`` (which already aligns user and bot audio
in time); we only stream its chunks into a WAV file so a long call is never held in
memory. Place it right after ``transport.output()``.
"""

from __future__ import annotations

import logging
import wave
from pathlib import Path

from pipecat.frames.frames import Frame, StartFrame, TTSSpeakFrame
from pipecat.processors.audio.audio_buffer_processor import AudioBufferProcessor
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

log = logging.getLogger("voxline.twilio")


class TwoChannelRecorder:
    def __init__(self, directory: Path, call_id: str, *, sample_rate: int = 8000,
                 flush_secs: float = 5.0) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{call_id}.wav"
        self.call_id = call_id
        self.processor = AudioBufferProcessor(
            sample_rate=sample_rate,
            num_channels=2,
            buffer_size=int(sample_rate * 2 * 2 * flush_secs),  # 16-bit stereo
            auto_start_recording=True,
        )
        self._wav: wave.Wave_write | None = None
        self.processor.event_handler("on_audio_data")(self._on_audio)
        self.processor.event_handler("on_recording_stopped")(self._on_stopped)

    async def _on_audio(self, _: object, audio: bytes, sample_rate: int, num_channels: int) -> None:
        if self._wav is None:
            self._wav = wave.open(str(self.path), "wb")
            self._wav.setnchannels(num_channels)
            self._wav.setsampwidth(2)
            self._wav.setframerate(sample_rate)
        self._wav.writeframes(audio)

    async def _on_stopped(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._wav is not None:
            self._wav.close()
            self._wav = None
            log.info("%s recording saved to %s", self.call_id, self.path.name)


class ConsentPrompt(FrameProcessor):
    """Says the recording-consent sentence first, before anything else (the greeting).

    Placed before the TTS: right after the StartFrame has passed, it sends the
    sentence downstream, ahead of the greeting the session queues once the pipeline
    has started.
    """

    def __init__(self, text: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.text = text

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(TTSSpeakFrame(self.text))
