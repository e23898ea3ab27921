"""A fake Deepgram live transcription API (`wss://api.deepgram.com/v1/listen`).

Wire protocol (developers.deepgram.com/reference/speech-to-text/listen-streaming, and
deepgram-sdk's listen.v1 types): options arrive as query parameters (model, encoding,
sample_rate, channels, interim_results, ...), the key as `Authorization: Token KEY`.
The client sends binary audio and text control messages `{"type": "KeepAlive"}`,
`{"type": "Finalize"}` and `{"type": "CloseStream"}`; the server answers with
`Results` messages (`is_final`, `speech_final`, `from_finalize`, channel.alternatives
[transcript, confidence, words]) and, on CloseStream, a `Metadata` message before it
closes. KeepAlive gets no answer.

It cannot recognise speech: each utterance's transcript is scripted (a queue shared by
all connections). Interim results grow word by word every `interim_every_ms` of audio;
the final result comes after `final_after_ms` of audio (endpointing), or on Finalize
(with `from_finalize: true`), or on CloseStream.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.loopback import LoopbackServer, Received, WsSender, json_error, received


@dataclass
class ListenSession:
    """One websocket connection to /v1/listen."""

    request: Received
    audio: bytearray = field(default_factory=bytearray)
    sent: list[dict[str, Any]] = field(default_factory=list)  # what the fake answered
    close_code: int | None = None

    @property
    def query(self) -> dict[str, str]:
        return self.request.query

    @property
    def controls(self) -> list[str]:
        """Types of the text messages the client sent, in order."""
        return [m.get("type", "?") for m in self.request.messages]

    def results(self, final: bool | None = None) -> list[dict[str, Any]]:
        return [m for m in self.sent if m.get("type") == "Results"
                and (final is None or m.get("is_final") is final)]


class FakeDeepgram(LoopbackServer):
    def __init__(self, transcripts: Iterable[str] = (), *, api_key: str | None = None,
                 interim_every_ms: int | None = 300, final_after_ms: int | None = None,
                 model_name: str = "general-nova-3") -> None:
        super().__init__()
        self.transcripts = deque(transcripts)
        self.api_key = api_key  # None: any non-empty key is accepted
        self.interim_every_ms = interim_every_ms
        self.final_after_ms = final_after_ms
        self.model_name = model_name
        self.sessions: list[ListenSession] = []
        self._open: dict[web.WebSocketResponse, ListenSession] = {}

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/v1/listen", self._listen)]

    async def close_sessions(self, code: int = 1011, reason: str = "NET-0001") -> None:
        """Close every open connection from the server side, as Deepgram does on errors."""
        for ws, session in list(self._open.items()):
            session.close_code = code
            await ws.close(code=code, message=reason.encode())

    # -- handshake -------------------------------------------------------------
    async def _listen(self, request: web.Request) -> web.StreamResponse:
        session = ListenSession(received(request))
        self.sessions.append(session)
        await self.changed()
        request_id = str(uuid.uuid4())
        auth = request.headers.get("Authorization", "")
        scheme, _, key = auth.partition(" ")
        if scheme not in ("Token", "Bearer") or not key or (self.api_key and key != self.api_key):
            return json_error(401, {"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials.",
                                    "request_id": request_id})
        status = self.faults.refusal()
        if status is not None:
            return json_error(status, {"err_code": "FAKE_REFUSAL", "err_msg": f"refused with {status}",
                                       "request_id": request_id})
        ws = await self.open_ws(request)
        self._open[ws] = session
        sender = WsSender(ws, request, self.faults, session.sent)
        state = _Utterance(request_id, self._bytes_per_ms(session.query))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    session.audio += msg.data
                    await self._on_audio(sender, state, session, len(msg.data))
                elif msg.type == WSMsgType.TEXT:
                    message = msg.json()
                    session.request.messages.append(message)
                    if message.get("type") == "Finalize":
                        await self._final(sender, state, session, from_finalize=True)
                    elif message.get("type") == "CloseStream":
                        await self._final(sender, state, session)
                        await sender.send(self._metadata(state, session))
                        await ws.close(code=1000)
                await self.changed()
        finally:
            if session.close_code is None:
                session.close_code = ws.close_code
            self._open.pop(ws, None)
            self.forget_ws(ws)
            await self.changed()
        return ws

    @staticmethod
    def _bytes_per_ms(query: dict[str, str]) -> float:
        width = 1 if query.get("encoding") in ("mulaw", "alaw") else 2
        return int(query.get("sample_rate", "16000")) * width * int(query.get("channels", "1")) / 1000

    # -- transcripts -------------------------------------------------------------
    async def _on_audio(self, sender: WsSender, state: _Utterance, session: ListenSession, n: int) -> None:
        state.pending_ms += n / state.bytes_per_ms
        if not self.transcripts:
            return
        if self.final_after_ms is not None and state.pending_ms >= self.final_after_ms:
            await self._final(sender, state, session, speech_final=True)
            return
        if (self.interim_every_ms and session.query.get("interim_results") == "true"
                and state.pending_ms - state.last_interim_ms >= self.interim_every_ms):
            state.last_interim_ms = state.pending_ms
            state.interims += 1
            words = self.transcripts[0].split()
            await sender.send(self._results(state, " ".join(words[:state.interims]), is_final=False))

    async def _final(self, sender: WsSender, state: _Utterance, session: ListenSession, *,
                     from_finalize: bool = False, speech_final: bool = False) -> None:
        if state.pending_ms <= 0:
            return  # nothing buffered: Deepgram has nothing to flush
        text = self.transcripts.popleft() if self.transcripts else ""
        message = self._results(state, text, is_final=True, speech_final=speech_final or from_finalize)
        if from_finalize:
            message["from_finalize"] = True
        await sender.send(message)
        state.start_ms += state.pending_ms
        state.pending_ms = state.last_interim_ms = 0.0
        state.interims = 0

    def _results(self, state: _Utterance, text: str, *, is_final: bool, speech_final: bool = False) -> dict:
        start, duration = state.start_ms / 1000, state.pending_ms / 1000
        words = text.split()
        step = duration / max(1, len(words))
        return {
            "type": "Results", "channel_index": [0, 1], "duration": round(duration, 3),
            "start": round(start, 3), "is_final": is_final, "speech_final": speech_final,
            "from_finalize": False,
            "channel": {"alternatives": [{
                "transcript": text, "confidence": 0.98 if text else 0.0,
                "words": [{"word": w.lower().strip(".,?!"), "start": round(start + i * step, 3),
                           "end": round(start + (i + 1) * step, 3), "confidence": 0.98,
                           "punctuated_word": w} for i, w in enumerate(words)],
            }]},
            "metadata": {"request_id": state.request_id,
                         "model_uuid": str(uuid.uuid5(uuid.NAMESPACE_DNS, self.model_name)),
                         "model_info": {"name": self.model_name, "version": "2024-01-01.0", "arch": "nova-3"}},
        }

    def _metadata(self, state: _Utterance, session: ListenSession) -> dict:
        return {"type": "Metadata", "transaction_key": "deprecated", "request_id": state.request_id,
                "sha256": hashlib.sha256(bytes(session.audio)).hexdigest(),
                "created": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "duration": round(len(session.audio) / state.bytes_per_ms / 1000, 3),
                "channels": int(session.query.get("channels", "1"))}


@dataclass
class _Utterance:
    request_id: str
    bytes_per_ms: float
    start_ms: float = 0.0  # audio before the current utterance
    pending_ms: float = 0.0  # audio of the current utterance, not finalised yet
    last_interim_ms: float = 0.0
    interims: int = 0
