"""The visitor's audio reaches the agent 60 ms sooner: a shorter aiortc receive buffer.

aiortc holds received audio in a jitter buffer that releases a frame only once four
more are queued behind it (``prefetch=4``): 80 ms of Opus frames before the agent's
VAD hears anything, and so 60 ms more voice-to-voice than necessary. A buffer in front
of a loudspeaker needs that slack to play smoothly; ours feeds VAD and STT, which
play nothing. The buffer still puts packets back in order (it waits at a gap whatever
its prefetch), so one frame of look-ahead is enough. aiortc has no setting for it:
the receiver's buffer is private, and left alone if it is not where we expect it.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("voxline.web")

AUDIO_PREFETCH = 1


def shorten_audio_buffers(pc: Any, prefetch: int = AUDIO_PREFETCH) -> int:
    """Set ``prefetch`` on the audio receivers of ``pc``; how many were changed."""
    changed = 0
    for transceiver in pc.getTransceivers():
        if transceiver.kind != "audio":
            continue
        buffer = getattr(transceiver.receiver, "_RTCRtpReceiver__jitter_buffer", None)
        if buffer is not None and hasattr(buffer, "_prefetch"):
            buffer._prefetch = prefetch
            changed += 1
    return changed
