"""A fake OpenAI Realtime API (`wss://api.openai.com/v1/realtime?model=...`), GA events.

Wire protocol (platform.openai.com/docs/api-reference/realtime-client-events and
-server-events; Pipecat 1.14's `services/openai/realtime/events.py` models): the key as
`Authorization: Bearer KEY`; on connect the server sends `session.created`. Client events:
`session.update` (→ `session.updated`), `conversation.item.create` (→
`conversation.item.added`), `input_audio_buffer.append` (base64 PCM16 24 kHz),
`input_audio_buffer.commit` (→ `input_audio_buffer.committed`, the user item
`conversation.item.added`, then `conversation.item.input_audio_transcription.completed`
when transcription is on; an empty buffer is an `input_audio_buffer_commit_empty` error),
`input_audio_buffer.clear` (→ `input_audio_buffer.cleared`), `response.create`,
`response.cancel` (an `error` with code `response_cancel_not_active` when nothing is
running) and `conversation.item.truncate` (→ `conversation.item.truncated`; the item's
transcript is cut to what the audio played up to `audio_end_ms` carried).

A response is `response.created`, the assistant item `conversation.item.added`, then per
audio chunk `response.output_audio.delta` followed by the words it speaks as
`response.output_audio_transcript.delta`, `response.output_audio.done`,
`response.output_audio_transcript.done`, `conversation.item.done` and `response.done`
(status `completed` or `cancelled`, with usage). A tool call is a `function_call` item:
`conversation.item.added`, `response.function_call_arguments.delta`/`.done`,
`response.done`; its result comes back as a `function_call_output` item.

It cannot hear: each committed utterance's transcript and each answer are scripted.
Audio is streamed `speed` times faster than real time, so an answer is still running
while the caller hears it and can be cancelled.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.loopback import LoopbackServer, Received, json_error, received
from tests.fakes.synth import chunks, synthesize

RATE = 24000


@dataclass
class RealtimeReply:
    text: str | None = None
    tool: str | None = None  # a function call instead of speech
    arguments: str = "{}"


@dataclass
class RealtimeSession:
    request: Received
    events: list[dict[str, Any]] = field(default_factory=list)  # what the client sent
    sent: list[dict[str, Any]] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)  # appended, not yet committed
    committed_secs: float = 0.0
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    session: dict[str, Any] = field(default_factory=dict)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


class FakeRealtime(LoopbackServer):
    def __init__(self, *, transcripts: Iterable[str] = (), replies: Iterable[RealtimeReply] = (),
                 api_key: str | None = None, speed: float = 2.0, chunk_secs: float = 0.2) -> None:
        super().__init__()
        self.transcripts = deque(transcripts)
        self.replies = deque(replies)
        self.fallback = RealtimeReply(text="Okay.")
        self.api_key = api_key
        self.speed = speed
        self.chunk_secs = chunk_secs
        self.sessions: list[RealtimeSession] = []

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/v1/realtime", self._ws)]

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        s = RealtimeSession(received(request))
        self.sessions.append(s)
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or (self.api_key and auth != f"Bearer {self.api_key}"):
            return json_error(401, {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                                              "code": "invalid_api_key"}})
        status = self.faults.refusal()
        if status is not None:
            return json_error(status, {"error": {"message": f"refused with {status}", "type": "server_error"}})
        ws = await self.open_ws(request)
        s.session = {"type": "realtime", "object": "realtime.session", "id": _id("sess"),
                     "model": request.query.get("model"), "output_modalities": ["audio"]}
        running: dict[str, asyncio.Task[None]] = {}

        async def send(event: dict[str, Any]) -> None:
            event = {"event_id": _id("event"), **event}
            s.sent.append(event)
            if not ws.closed:
                await ws.send_str(json.dumps(event))

        await send({"type": "session.created", "session": s.session})
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                event = json.loads(msg.data)
                s.events.append(event)
                await self._on_event(s, event, send, running)
                await self.changed()
        finally:
            for task in running.values():
                task.cancel()
            self.forget_ws(ws)
            await self.changed()
        return ws

    async def _on_event(self, s: RealtimeSession, e: dict[str, Any], send: Any,
                        running: dict[str, asyncio.Task[None]]) -> None:
        kind = e.get("type")
        if kind == "session.update":
            s.session.update(e.get("session") or {})
            await send({"type": "session.updated", "session": s.session})
        elif kind == "conversation.item.create":
            item = {"id": _id("item"), "object": "realtime.item", "status": "completed", **e["item"]}
            s.items[item["id"]] = item
            await send({"type": "conversation.item.added", "previous_item_id": e.get("previous_item_id"),
                        "item": item})
        elif kind == "input_audio_buffer.append":
            s.audio += base64.b64decode(e["audio"])
        elif kind == "input_audio_buffer.clear":
            s.audio.clear()
            await send({"type": "input_audio_buffer.cleared"})
        elif kind == "input_audio_buffer.commit":
            await self._commit(s, send)
        elif kind == "response.create":
            response_id = _id("resp")
            running[response_id] = asyncio.ensure_future(self._respond(s, response_id, send, running))
        elif kind == "response.cancel":
            active = [t for t in running.values() if not t.done()]
            if not active:
                await send({"type": "error", "error": {"type": "invalid_request_error", "code":
                            "response_cancel_not_active", "message": "There is no active response."}})
            for task in active:
                task.cancel()
        elif kind == "conversation.item.truncate":
            item = s.items.get(e["item_id"])
            if item is not None:
                self._truncate(item, e["audio_end_ms"])
            await send({"type": "conversation.item.truncated", "item_id": e["item_id"],
                        "content_index": e["content_index"], "audio_end_ms": e["audio_end_ms"]})

    async def _commit(self, s: RealtimeSession, send: Any) -> None:
        if len(s.audio) < RATE * 2 // 10:  # under 100 ms
            await send({"type": "error", "error": {"type": "invalid_request_error",
                        "code": "input_audio_buffer_commit_empty",
                        "message": "Error committing input audio buffer: buffer too small."}})
            return
        item_id = _id("item")
        s.committed_secs += len(s.audio) / (2 * RATE)
        s.audio.clear()
        item = {"id": item_id, "object": "realtime.item", "type": "message", "status": "completed",
                "role": "user", "content": [{"type": "input_audio", "transcript": None}]}
        s.items[item_id] = item
        await send({"type": "input_audio_buffer.committed", "previous_item_id": None, "item_id": item_id})
        await send({"type": "conversation.item.added", "previous_item_id": None, "item": item})
        if (s.session.get("audio") or {}).get("input", {}).get("transcription"):
            transcript = self.transcripts.popleft() if self.transcripts else ""
            item["content"][0]["transcript"] = transcript
            await send({"type": "conversation.item.input_audio_transcription.completed", "item_id": item_id,
                        "content_index": 0, "transcript": transcript,
                        "usage": {"type": "duration", "seconds": 1}})

    async def _respond(self, s: RealtimeSession, response_id: str, send: Any,
                       running: dict[str, asyncio.Task[None]]) -> None:
        reply = self.replies.popleft() if self.replies else self.fallback
        await send({"type": "response.created", "response": {"id": response_id, "object": "realtime.response",
                                                              "status": "in_progress", "output": []}})
        status, output, spoken = "completed", [], 0.0
        try:
            await self.faults.before_first()
            if reply.tool:
                output.append(await self._call(s, response_id, reply, send))
            else:
                item, spoken = await self._speak(s, response_id, reply.text or "", send)
                output.append(item)
        except asyncio.CancelledError:
            status = "cancelled"
        finally:
            running.pop(response_id, None)
        words = len((reply.text or reply.arguments).split())
        await send({"type": "response.done", "response": {
            "id": response_id, "object": "realtime.response", "status": status, "output": output,
            "usage": {"total_tokens": 120 + words, "input_tokens": 120, "output_tokens": words,
                      "input_token_details": {"text_tokens": 100, "audio_tokens": 20, "cached_tokens": 0},
                      "output_token_details": {"text_tokens": words, "audio_tokens": int(spoken * 10)}}}})

    async def _speak(self, s: RealtimeSession, response_id: str, text: str, send: Any) -> tuple[dict, float]:
        item_id = _id("item")
        item = {"id": item_id, "object": "realtime.item", "type": "message", "status": "in_progress",
                "role": "assistant", "content": [{"type": "output_audio", "transcript": ""}],
                "_text": text, "_secs": 0.0}
        s.items[item_id] = item
        public = {k: v for k, v in item.items() if not k.startswith("_")}
        await send({"type": "conversation.item.added", "previous_item_id": None, "item": public})
        speech = synthesize(text, RATE)
        where = {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}
        sent_to = 0
        for pcm, _, b in chunks(speech, self.chunk_secs):
            await send({"type": "response.output_audio.delta", **where, "delta": base64.b64encode(pcm).decode()})
            item["_secs"] += len(pcm) / (2 * RATE)
            said = text[sent_to:b]
            if said:
                item["content"][0]["transcript"] += said
                await send({"type": "response.output_audio_transcript.delta", **where, "delta": said})
                sent_to = b
            await asyncio.sleep(len(pcm) / (2 * RATE) / self.speed)
        await send({"type": "response.output_audio.done", **where})
        await send({"type": "response.output_audio_transcript.done", **where, "transcript": text})
        item["status"] = "completed"
        public = {k: v for k, v in item.items() if not k.startswith("_")}
        await send({"type": "conversation.item.done", "previous_item_id": None, "item": public})
        return public, item["_secs"]

    async def _call(self, s: RealtimeSession, response_id: str, reply: RealtimeReply, send: Any) -> dict:
        item_id, call_id = _id("item"), _id("call")
        item = {"id": item_id, "object": "realtime.item", "type": "function_call", "status": "in_progress",
                "call_id": call_id, "name": reply.tool, "arguments": ""}
        s.items[item_id] = item
        await send({"type": "conversation.item.added", "previous_item_id": None, "item": dict(item)})
        where = {"response_id": response_id, "item_id": item_id, "output_index": 0, "call_id": call_id}
        await send({"type": "response.function_call_arguments.delta", **where, "delta": reply.arguments})
        await send({"type": "response.function_call_arguments.done", **where, "arguments": reply.arguments})
        item.update(status="completed", arguments=reply.arguments)
        await send({"type": "conversation.item.done", "previous_item_id": None, "item": dict(item)})
        return dict(item)

    @staticmethod
    def _truncate(item: dict[str, Any], audio_end_ms: int) -> None:
        """The server keeps what was played: the transcript up to ``audio_end_ms``."""
        total = item.get("_secs") or 0.0
        if not total:
            return
        text = item.get("_text", "")
        keep = text[:int(len(text) * min(1.0, audio_end_ms / 1000 / total))]
        item["content"][0]["transcript"] = keep
        item["truncated_at_ms"] = audio_end_ms

    def items_of(self, role: str) -> list[dict[str, Any]]:
        return [i for s in self.sessions for i in s.items.values() if i.get("role") == role]
