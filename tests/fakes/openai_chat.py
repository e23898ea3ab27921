"""A fake OpenAI Chat Completions API on loopback, speaking its streaming wire format.

``POST /v1/chat/completions`` with ``stream: true`` answers with server-sent events:
one ``data: {chat.completion.chunk}`` line per delta, then ``data: [DONE]``. Each
request takes the next scripted reply: text (streamed word by word) or a tool call
(whose raw ``arguments`` string is sent as given, so tests can send invalid JSON).
Requests are kept so tests can check what the model was sent.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route


@dataclass
class Reply:
    text: str | None = None
    tool: str | None = None
    arguments: str = "{}"
    pause_after_sentence: float = 0.0  # the model stalls after its first sentence (and a word)


@dataclass
class FakeOpenAIChat:
    replies: list[Reply] = field(default_factory=list)
    fallback: Reply = field(default_factory=lambda: Reply(text="Okay."))
    requests: list[dict[str, Any]] = field(default_factory=list)

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> str:
        body = {
            "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": "fake-model",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body)}\n\n"

    async def _events(self, reply: Reply):
        yield self._chunk({"role": "assistant", "content": ""})
        if reply.tool is not None:
            yield self._chunk({"tool_calls": [{
                "index": 0, "id": f"call_{len(self.requests)}", "type": "function",
                "function": {"name": reply.tool, "arguments": ""}}]})
            yield self._chunk({"tool_calls": [{"index": 0, "function": {"arguments": reply.arguments}}]})
            yield self._chunk({}, finish="tool_calls")
        else:
            words, sentence_done = (reply.text or "").split(" "), False
            for i, word in enumerate(words):
                yield self._chunk({"content": word if i == 0 else f" {word}"})
                if sentence_done and reply.pause_after_sentence:  # the next word shows it ended
                    await asyncio.sleep(reply.pause_after_sentence)
                    sentence_done = None  # once
                elif sentence_done is False and word.endswith("."):
                    sentence_done = True
            yield self._chunk({}, finish="stop")
        yield "data: [DONE]\n\n"

    async def _completions(self, request: Request):
        body = await request.json()
        if not isinstance(body.get("messages"), list):
            return JSONResponse({"error": {"message": "messages is required"}}, status_code=400)
        self.requests.append(body)
        reply = self.replies.pop(0) if self.replies else self.fallback
        return StreamingResponse(self._events(reply), media_type="text/event-stream")

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self._completions, methods=["POST"])])
