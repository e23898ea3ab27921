"""Twilio Media Streams wire messages: parsing `start` and building what we send back."""

from __future__ import annotations

import json
import re
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
    """The `start` message lacks the ids we need to run a call, or holds bad values."""


_CALL_SID = re.compile(r"^CA[0-9a-f]{32}\Z")  # \Z: "$" would let a trailing newline through
_STREAM_SID = re.compile(r"^MZ[0-9a-f]{32}\Z")
_ACCOUNT_SID = re.compile(r"^AC[0-9a-f]{32}\Z")
MAX_PARAMETERS = 16
MAX_PARAMETER_LEN = 256


_ADDRESS = re.compile(r"^[A-Za-z0-9+:@._~-]{1,128}\Z")


def address(value: object) -> str:
    """A From/To as Twilio sends them (+E.164, client:name, sip:user@host, anonymous);
    anything else becomes "" before it reaches a log line, a token or a column."""
    return value if isinstance(value, str) and _ADDRESS.match(value) else ""


def valid_call_sid(value: object) -> bool:
    """Twilio CallSids are ``CA`` and 32 lowercase hex digits: anything else is refused
    before it reaches a log line or a column."""
    return isinstance(value, str) and bool(_CALL_SID.match(value))


def parse_start(message: Mapping[str, Any]) -> CallInfo:
    start = message.get("start")
    if not isinstance(start, Mapping):
        raise StartMessageError("start message has no 'start' object")
    stream_sid = start.get("streamSid") or message.get("streamSid")
    call_sid = start.get("callSid")
    if not isinstance(stream_sid, str) or not _STREAM_SID.match(stream_sid):
        raise StartMessageError("start message lacks a valid streamSid")
    if not valid_call_sid(call_sid):
        raise StartMessageError("start message lacks a valid callSid")
    account = start.get("accountSid", "")
    if account and (not isinstance(account, str) or not _ACCOUNT_SID.match(account)):
        raise StartMessageError("start message has an invalid accountSid")
    fmt = start.get("mediaFormat") or {}
    if not isinstance(fmt, Mapping):
        raise StartMessageError("mediaFormat is not an object")
    rate = fmt.get("sampleRate", 8000)
    if fmt and (fmt.get("encoding") != "audio/x-mulaw" or not isinstance(rate, int | str)
                or str(rate) != "8000" or fmt.get("channels", 1) not in (1, "1")):
        raise StartMessageError("unsupported media format (need audio/x-mulaw, 8000 Hz, mono)")
    params = start.get("customParameters") or {}
    if not isinstance(params, Mapping) or len(params) > MAX_PARAMETERS or not all(
        isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= MAX_PARAMETER_LEN
        for k, v in params.items()
    ):
        raise StartMessageError("customParameters must be a small object of short strings")
    tracks = start.get("tracks") or ["inbound"]
    if not isinstance(tracks, list) or not all(isinstance(t, str) for t in tracks):
        raise StartMessageError("tracks must be a list of strings")
    return CallInfo(
        call_sid=str(call_sid),
        stream_sid=stream_sid,
        account_sid=str(account),
        start_sequence=_int(message.get("sequenceNumber"), 1),
        custom_parameters=dict(params),
        media_format=dict(fmt),
        tracks=tuple(tracks[:4]),
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
