"""A fake Anthropic Messages API (`POST /v1/messages`, also `?beta=true`).

Wire protocol (docs.anthropic.com/en/api/messages-streaming; anthropic SDK types):
headers `x-api-key`, `anthropic-version` (required), `anthropic-beta` (optional). With
`stream: true` the answer is server-sent events, each `event: TYPE` + `data: {"type": TYPE}`:
`message_start` (a Message with empty content and `usage.input_tokens`), `ping`, per
content block `content_block_start` / `content_block_delta` / `content_block_stop` —
text blocks stream `text_delta`s, `tool_use` blocks (`id`, `name`, `input: {}`) stream
their input as `input_json_delta.partial_json` pieces (the first one empty) — then
`message_delta` (`stop_reason`, `stop_sequence`, `usage.output_tokens`) and
`message_stop`. An overload mid-stream is an `event: error` with
`{"type": "error", "error": {"type": "overloaded_error", ...}}`; HTTP errors carry the
same body with the status's error type. Without `stream` it answers one Message.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.loopback import LoopbackServer, json_error

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
               500: "api_error", 529: "overloaded_error"}


@dataclass
class ToolUse:
    name: str
    input_json: str = "{}"  # sent as given, in pieces of `piece` chars
    piece: int = 9


@dataclass
class MessageReply:
    text: str | None = None
    tool_uses: list[ToolUse] = field(default_factory=list)
    stop_reason: str | None = None  # default: tool_use when there are tools, else end_turn
    input_tokens: int = 25
    output_tokens: int | None = None  # default: one per streamed piece
    error: str | None = None  # e.g. "overloaded_error": sent as an `error` event after message_start


def error(status: int, message: str, kind: str | None = None) -> web.Response:
    kind = kind or ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return json_error(status, {"type": "error", "error": {"type": kind, "message": message}},
                      headers={"request-id": "req_fake"})


class FakeAnthropic(LoopbackServer):
    def __init__(self, *, replies: Iterable[MessageReply] = (), api_key: str | None = None) -> None:
        super().__init__()
        self.replies = deque(replies)
        self.fallback = MessageReply(text="Okay.")
        self.api_key = api_key

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/messages", self._messages)]

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests]

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        await self.record(request, body)
        key = request.headers.get("x-api-key")
        if not key or (self.api_key and key != self.api_key):
            return error(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return error(400, "anthropic-version: header is required")
        status = self.faults.refusal()
        if status is not None:
            return error(status, f"refused with {status}")
        for name, kind in (("model", str), ("max_tokens", int), ("messages", list)):
            if not isinstance(body.get(name), kind) or isinstance(body.get(name), bool):
                return error(400, f"{name}: Field required" if body.get(name) is None else f"{name}: invalid")
        reply = self.replies.popleft() if self.replies else self.fallback
        if not body.get("stream"):
            return web.json_response(self._message(body, reply), headers={"request-id": "req_fake"})
        return await self.stream(request, self._events(body, reply), "text/event-stream",
                                 headers={"request-id": "req_fake", "Cache-Control": "no-cache"})

    def _blocks(self, reply: MessageReply) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
        if reply.text:
            words = reply.text.split(" ")
            yield {"type": "text", "text": ""}, [
                {"type": "text_delta", "text": w if i == 0 else f" {w}"} for i, w in enumerate(words)]
        for i, tool in enumerate(reply.tool_uses):
            pieces = [tool.input_json[k:k + tool.piece] for k in range(0, len(tool.input_json), tool.piece)]
            yield {"type": "tool_use", "id": f"toolu_fake{i:02d}", "name": tool.name, "input": {}}, [
                {"type": "input_json_delta", "partial_json": p} for p in ["", *pieces]]

    def _message(self, body: dict[str, Any], reply: MessageReply, streaming: bool = False) -> dict[str, Any]:
        """The Message: complete, or as `message_start` shows it (no content yet)."""
        content: list[dict[str, Any]] = []
        if not streaming:
            content = [{"type": "text", "text": reply.text}] if reply.text else []
            content += [{"type": "tool_use", "id": f"toolu_fake{i:02d}", "name": t.name,
                         "input": json.loads(t.input_json)} for i, t in enumerate(reply.tool_uses)]
        output = 1 if streaming else reply.output_tokens or max(1, len((reply.text or "").split()))
        return {"id": "msg_fake", "type": "message", "role": "assistant", "model": body["model"],
                "content": content, "stop_reason": None if streaming else self._stop(reply), "stop_sequence": None,
                "usage": {"input_tokens": reply.input_tokens, "output_tokens": output,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}

    @staticmethod
    def _stop(reply: MessageReply) -> str:
        return reply.stop_reason or ("tool_use" if reply.tool_uses else "end_turn")

    def _events(self, body: dict[str, Any], reply: MessageReply) -> Iterator[str]:
        def event(data: dict[str, Any]) -> str:
            return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n"

        yield event({"type": "message_start", "message": self._message(body, reply, streaming=True)})
        yield event({"type": "ping"})
        if reply.error:
            yield event({"type": "error", "error": {"type": reply.error, "message": "Overloaded"}})
            return
        pieces = 0
        for index, (block, deltas) in enumerate(self._blocks(reply)):
            yield event({"type": "content_block_start", "index": index, "content_block": block})
            for delta in deltas:
                pieces += 1
                yield event({"type": "content_block_delta", "index": index, "delta": delta})
            yield event({"type": "content_block_stop", "index": index})
        yield event({"type": "message_delta", "delta": {"stop_reason": self._stop(reply), "stop_sequence": None},
                     "usage": {"output_tokens": reply.output_tokens or max(1, pieces)}})
        yield event({"type": "message_stop"})
