"""A fake OpenAI API: chat completions (SSE, tool calls, usage), transcriptions, speech.

Wire protocol (platform.openai.com/docs/api-reference; the openai SDK's types):
- `POST /v1/chat/completions`, `stream: true`: `data: {chat.completion.chunk}` lines.
  Text comes as `delta.content`; a tool call as `delta.tool_calls[{index, id, type,
  function: {name, arguments: ""}}]`, then pieces of `arguments` under the same index;
  `finish_reason` is `tool_calls` or `stop`. With `stream_options.include_usage`
  every chunk has `usage: null` and one last chunk with `choices: []` carries the
  usage, before `data: [DONE]`. Without `stream` it answers one `chat.completion`.
- `POST /v1/audio/transcriptions`: multipart (file, model, language, prompt,
  response_format, temperature) → `{"text"}` (json), verbose_json, or plain text.
- `POST /v1/audio/speech`: JSON (model, input, voice, response_format, speed,
  instructions) → `pcm` (24 kHz int16 mono, no header) or `wav`, streamed.
Errors are `{"error": {"message", "type", "param", "code"}}`; a missing key is 401.
The existing tests/fakes/openai_chat.py stays as it is (other tests use it).
"""

from __future__ import annotations

import io
import json
import time
import wave
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.loopback import LoopbackServer, json_error
from tests.fakes.synth import synthesize

SPEECH_RATE = 24000


@dataclass
class ToolCall:
    name: str
    arguments: str = "{}"  # sent as given (may be invalid JSON), in pieces of `piece` chars
    piece: int = 7


@dataclass
class ChatReply:
    text: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    prompt_tokens: int = 21
    completion_tokens: int | None = None  # default: one per word/argument piece


def error(status: int, message: str, kind: str = "invalid_request_error", code: str | None = None) -> web.Response:
    return json_error(status, {"error": {"message": message, "type": kind, "param": None, "code": code}})


class FakeOpenAI(LoopbackServer):
    def __init__(self, *, replies: Iterable[ChatReply] = (), transcripts: Iterable[str] = (),
                 api_key: str | None = None, voice: str = "tone") -> None:
        super().__init__()
        self.replies = deque(replies)
        self.fallback = ChatReply(text="Okay.")
        self.transcripts = deque(transcripts)
        self.api_key = api_key
        self.voice = voice

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/chat/completions", self._chat),
                web.post("/v1/audio/transcriptions", self._transcribe),
                web.post("/v1/audio/speech", self._speech)]

    def of(self, path: str) -> list[Any]:
        return [r for r in self.requests if r.path == f"/v1/{path}"]

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return [r.body for r in self.of("chat/completions")]

    def _refusal(self, request: web.Request) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or (self.api_key and auth != f"Bearer {self.api_key}"):
            return error(401, "Incorrect API key provided.", code="invalid_api_key")
        status = self.faults.refusal()
        if status is not None:
            kind = "rate_limit_exceeded" if status == 429 else "server_error" if status >= 500 \
                else "invalid_request_error"
            return error(status, f"refused with {status}", kind)
        return None

    # -- chat --------------------------------------------------------------------
    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        await self.record(request, body)
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        if not isinstance(body.get("model"), str) or not body["model"]:
            return error(400, "you must provide a model parameter")
        if not isinstance(body.get("messages"), list):
            return error(400, "'messages' is a required property")
        reply = self.replies.popleft() if self.replies else self.fallback
        if not body.get("stream"):
            return web.json_response(self._completion(body, reply))
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return await self.stream(request, self._events(body, reply, usage), "text/event-stream")

    def _deltas(self, reply: ChatReply) -> Iterator[tuple[dict[str, Any], str | None]]:
        yield {"role": "assistant", "content": "", "refusal": None}, None
        for i, call in enumerate(reply.tool_calls):
            yield {"tool_calls": [{"index": i, "id": f"call_{i}_{call.name}", "type": "function",
                                   "function": {"name": call.name, "arguments": ""}}]}, None
            for k in range(0, len(call.arguments), call.piece):
                yield {"tool_calls": [{"index": i, "function": {"arguments": call.arguments[k:k + call.piece]}}]}, None
        if not reply.tool_calls:
            for i, word in enumerate((reply.text or "").split(" ")):
                yield {"content": word if i == 0 else f" {word}"}, None
        yield {}, "tool_calls" if reply.tool_calls else "stop"

    def _events(self, body: dict[str, Any], reply: ChatReply, usage: bool) -> Iterator[str]:
        created, n = int(time.time()), 0
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created,
                "model": body["model"], "system_fingerprint": "fp_fake", "service_tier": "default"}
        for delta, finish in self._deltas(reply):
            n += 1
            chunk = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            if usage:
                chunk["usage"] = None
            yield f"data: {json.dumps(chunk)}\n\n"
        if usage:
            yield f"data: {json.dumps({**base, 'choices': [], 'usage': self._usage(reply, n - 2)})}\n\n"
        yield "data: [DONE]\n\n"

    @staticmethod
    def _usage(reply: ChatReply, pieces: int) -> dict[str, Any]:
        completion = reply.completion_tokens if reply.completion_tokens is not None else max(1, pieces)
        return {"prompt_tokens": reply.prompt_tokens, "completion_tokens": completion,
                "total_tokens": reply.prompt_tokens + completion,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}

    def _completion(self, body: dict[str, Any], reply: ChatReply) -> dict[str, Any]:
        calls = [{"id": f"call_{i}_{c.name}", "type": "function",
                  "function": {"name": c.name, "arguments": c.arguments}} for i, c in enumerate(reply.tool_calls)]
        message = {"role": "assistant", "content": None if calls else reply.text, "refusal": None}
        if calls:
            message["tool_calls"] = calls
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                "model": body["model"], "choices": [{"index": 0, "message": message, "logprobs": None,
                                                     "finish_reason": "tool_calls" if calls else "stop"}],
                "usage": self._usage(reply, len((reply.text or "").split()))}

    # -- audio -------------------------------------------------------------------
    async def _transcribe(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        fields: dict[str, Any] = {}
        for name, value in form.items():
            if isinstance(value, web.FileField):
                fields[name] = {"filename": value.filename, "content_type": value.content_type,
                                "data": value.file.read()}
            else:
                fields.setdefault(name, value)
        await self.record(request, fields)
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        if "file" not in fields or not fields.get("model"):
            return error(400, "file and model are required")
        await self.faults.before_first()
        text = self.transcripts.popleft() if self.transcripts else ""
        fmt = fields.get("response_format", "json")
        if fmt == "text":
            return web.Response(text=text + "\n")
        if fmt == "verbose_json":
            return web.json_response({"task": "transcribe", "language": "english", "duration": 1.0, "text": text,
                                      "segments": [{"id": 0, "start": 0.0, "end": 1.0, "text": text,
                                                    "avg_logprob": -0.1, "no_speech_prob": 0.01}]})
        return web.json_response({"text": text, "usage": {"type": "duration", "seconds": 1}})

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        await self.record(request, body)
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        if not body.get("model") or not body.get("input") or not body.get("voice"):
            return error(400, "model, input and voice are required")
        fmt = body.get("response_format", "mp3")
        if fmt not in ("pcm", "wav"):
            return error(400, f"this fake answers pcm or wav, not {fmt}")
        pcm = self.speech_audio(body["input"])
        if fmt == "wav":
            buf = io.BytesIO()
            with wave.open(buf, "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(SPEECH_RATE)
                w.writeframes(pcm)
            pcm = buf.getvalue()
        step = SPEECH_RATE * 2 // 10  # 100 ms chunks
        return await self.stream(request, [pcm[i:i + step] for i in range(0, len(pcm), step)],
                                 "audio/wav" if fmt == "wav" else "audio/pcm")

    def speech_audio(self, text: str) -> bytes:
        """The PCM `/v1/audio/speech` answers for `text`."""
        return synthesize(text, SPEECH_RATE, self.voice).pcm
