"""Per-agent phone settings (the ``phone:`` block of an agent spec).

Pydantic only, so that importing the spec never pulls in the phone transport::

    phone:
      voicemail: {action: leave_message, message: "Hi, this is the restaurant calling back."}
      recording: {enabled: true, consent: "This call may be recorded."}
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VoicemailSettings(_Strict):
    """What an outbound call does when Twilio's answering-machine detection says
    ``AnsweredBy=machine_*`` (or ``fax``).

    ``leave_message`` waits for the beep (Twilio's ``DetectMessageEnd``), says
    ``message`` and hangs up once it was played; ``hang_up`` ends the call at once
    (detection mode ``Enable``, which answers sooner); ``continue`` runs the agent
    anyway.
    """

    action: Literal["leave_message", "hang_up", "continue"] = "hang_up"
    message: str | None = Field(None, min_length=1, max_length=2000)
    detection_timeout_secs: int = Field(30, ge=3, le=59)

    @model_validator(mode="after")
    def _message_needed(self) -> VoicemailSettings:
        if self.action == "leave_message" and not self.message:
            raise ValueError("voicemail.action 'leave_message' needs a 'message'")
        return self

    @property
    def detection_mode(self) -> str:
        return "DetectMessageEnd" if self.action == "leave_message" else "Enable"


class RecordingSettings(_Strict):
    """Two-channel WAV per call (caller left, agent right) under the server's
    recording directory; ``consent`` is said first, before the greeting."""

    enabled: bool = False
    consent: str | None = Field(None, min_length=1, max_length=500)


class PhoneSettings(_Strict):
    voicemail: VoicemailSettings = Field(default_factory=VoicemailSettings)
    recording: RecordingSettings = Field(default_factory=RecordingSettings)


__all__ = ["PhoneSettings", "RecordingSettings", "VoicemailSettings"]
