"""Answering machines on outbound calls: act on Twilio's async AMD verdict.

With ``AsyncAmd=true`` the call connects (and our stream starts) at once while Twilio
listens; its verdict arrives later as ``AnsweredBy`` on the AMD status callback:
``human``, ``unknown``, ``fax``, ``machine_start`` (mode ``Enable``) or
``machine_end_beep`` / ``machine_end_silence`` / ``machine_end_other`` (mode
``DetectMessageEnd``: the machine's greeting is over, the recording has begun).

The agent's ``phone.voicemail`` settings decide what happens on a machine:

* ``hang_up`` -- end the call over REST at once (record: ``machine``);
* ``leave_message`` -- cut whatever the agent was saying (`clear`), say the message,
  wait until Twilio echoed the mark of its last chunk (it was recorded), then hang up
  over REST (record: ``voicemail``);
* ``continue`` -- nothing; the agent carries on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from pipecat.frames.frames import Frame, InterruptionWorkerFrame, TTSSpeakFrame

from voxline.call_settings import VoicemailSettings

if TYPE_CHECKING:
    from voxline.pipelines.call_control import CallControl

    from .session import TwilioCall

log = logging.getLogger("voxline.twilio")

MACHINE_END = frozenset({"machine_end_beep", "machine_end_silence", "machine_end_other"})
MACHINE = MACHINE_END | {"machine_start", "fax"}

QueueFrame = Callable[[Frame], Awaitable[None]]


def is_machine(answered_by: str | None) -> bool:
    return (answered_by or "") in MACHINE


async def on_answered_by(
    call: TwilioCall,
    control: CallControl,
    settings: VoicemailSettings,
    answered_by: str,
    queue_frame: QueueFrame,
    *,
    speech_timeout_secs: float = 30.0,
) -> str | None:
    """Act on one AMD verdict; returns the end reason if the call was ended."""
    if not is_machine(answered_by) or settings.action == "continue":
        return None
    sid = call.call_id
    if settings.action == "hang_up" or answered_by == "fax":
        log.info("%s answered by %s: hanging up", sid, answered_by)
        await control.hang_up("machine")
        return "machine"
    if answered_by not in MACHINE_END:
        return None  # machine_start: the beep is still to come (mode DetectMessageEnd)
    message = settings.message or ""
    log.info("%s answered by %s: leaving a message", sid, answered_by)
    await _interrupt(call, queue_frame)  # `clear`: the greeting must not run on
    since = call.heard.heard_count
    await queue_frame(TTSSpeakFrame(message))
    if not await call.heard.wait_heard(message, since=since, timeout=speech_timeout_secs):
        log.warning("%s voicemail message not confirmed played; hanging up anyway", sid)
    await control.hang_up("voicemail")
    return "voicemail"


async def _interrupt(call: TwilioCall, queue_frame: QueueFrame, limit_secs: float = 2.0) -> None:
    """Interrupt the pipeline and wait until the interruption has passed the TTS (the
    heard-text observer bumps the ledger's epoch), so the next speech is not cut by it."""
    ledger = call.ledger
    epoch = ledger.epoch
    await queue_frame(InterruptionWorkerFrame())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_secs
    while ledger.epoch == epoch and loop.time() < deadline:
        await ledger.wait_changed(deadline - loop.time())


__all__ = ["MACHINE", "MACHINE_END", "is_machine", "on_answered_by"]
