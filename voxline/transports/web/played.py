"""What the visitor heard, for a browser peer: audio counts as played once it is sent.

The phone learns what was played from Twilio's marks. A browser needs no such echo:
the WebRTC output track hands audio to aiortc 10 ms at a time in real time (a write
returns once its audio was taken for sending) and the browser plays it after a jitter
buffer of a few tens of milliseconds; the WebSocket output paces its sends in real
time as well. So this processor, right after the output transport, tells the phone's
:class:`~voxline.transports.twilio.marks.MarkLedger` that each chunk it sees was sent
*and* played. The phone's heard-text gate then works unchanged: on barge-in the
transcript keeps the sentences played, the first words of the one that was cut, and
the ``[interrupted]`` marker.
"""

from __future__ import annotations

from pipecat.frames.frames import (
    BotStoppedSpeakingFrame,
    Frame,
    InterruptionFrame,
    OutputAudioRawFrame,
    TTSStartedFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voxline.transports.twilio.marks import MarkLedger


class PlayedClock(FrameProcessor):
    def __init__(self, ledger: MarkLedger, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.ledger = ledger
        self.played_secs = 0.0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        ledger = self.ledger
        if direction == FrameDirection.DOWNSTREAM:
            if isinstance(frame, InterruptionFrame):
                ledger.clear()  # the output dropped what it held; nothing more of it plays
            elif isinstance(frame, TTSStartedFrame):
                ledger.begin_context(frame.context_id)
            elif isinstance(frame, OutputAudioRawFrame) and frame.audio:
                secs = len(frame.audio) / (2 * frame.num_channels * frame.sample_rate)
                self.played_secs += secs
                name = ledger.audio_sent(secs)
                if name is not None:
                    ledger.echo(name)
            elif isinstance(frame, BotStoppedSpeakingFrame):
                name = ledger.flush()
                if name is not None:
                    ledger.echo(name)
        await self.push_frame(frame, direction)
