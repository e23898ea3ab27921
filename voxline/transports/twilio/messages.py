"""Twilio Media Streams wire messages: parsing `start` and building what we send back."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CallInfo:
    """Identity of one streamed call, taken from the `start` message.

    ``custom_parameters`` are the <Parameter>s our TwiML put on the <Stream>: that is
    how the agent name, direction and numbers travel from the webhook to the socket.
    """

    call_sid: str
    stream_sid: str
    account_sid: str
    start_sequence: int
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    media_format: Mapping[str, Any] = field(default_factory=dict)
    tracks: tuple[str, ...] = ("inbound",)

    @property
    def agent(self) -> str | None:
        return self.custom_parameters.get("agent")

    @property
    def direction(self) -> str:
        return self.custom_parameters.get("direction", "inbound")

    @property
    def caller(self) -> str | None:
        return self.custom_parameters.get("from")

    @property
    def dialed(self) -> str | None:
        return self.custom_parameters.get("to")


class StartMessageError(ValueError):
    """The `start` message lacks the ids we need to run a call."""


def parse_start(message: Mapping[str, Any]) -> CallInfo:
    start = message.get("start")
    if not isinstance(start, Mapping):
        raise StartMessageError("start message has no 'start' object")
    stream_sid = start.get("streamSid") or message.get("streamSid")
    call_sid = start.get("callSid")
    if not stream_sid or not call_sid:
        raise StartMessageError("start message lacks streamSid or callSid")
    fmt = start.get("mediaFormat") or {}
    if fmt and (fmt.get("encoding") != "audio/x-mulaw" or int(fmt.get("sampleRate", 8000)) != 8000):
        raise StartMessageError(f"unsupported media format {fmt!r}")
    params = start.get("customParameters") or {}
    return CallInfo(
        call_sid=str(call_sid),
        stream_sid=str(stream_sid),
        account_sid=str(start.get("accountSid", "")),
        start_sequence=_int(message.get("sequenceNumber"), 1),
        custom_parameters={str(k): str(v) for k, v in params.items()},
        media_format=dict(fmt),
        tracks=tuple(start.get("tracks") or ("inbound",)),
    )


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def mark_message(stream_sid: str, name: str) -> str:
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear_message(stream_sid: str) -> str:
    return json.dumps({"event": "clear", "streamSid": stream_sid})
