"""A fake ElevenLabs text-to-speech API: the websocket inputs and the HTTP streams.

Wire protocol (elevenlabs.io/docs/api-reference, AsyncAPI of `stream-input` and
`multi-stream-input`; Pipecat 1.14's ElevenLabsTTSService uses multi-stream-input):
`GET /v1/text-to-speech/{voice_id}/multi-stream-input?model_id=&output_format=&auto_mode=`
with the `xi-api-key` header. Client messages: `{"text": " ", "context_id", "voice_settings"}`
opens a context, `{"text", "context_id"}` adds text, `{"context_id", "flush": true}`
generates what is buffered, `{"context_id", "close_context": true}` ends the context
(unflushed text is dropped), `{"text": ""}` keeps alive, `{"close_socket": true}` ends it
all. Server messages: `{"audio": base64, "alignment", "normalizedAlignment", "contextId"}`
(alignment: chars/charStartTimesMs/charDurationsMs, relative to the chunk), then
`{"isFinal": true, "contextId"}` once a closed context's audio is out.
`stream-input` is the same without contexts: BOS `{"text": " "}`, EOS `{"text": ""}`.

HTTP: `POST /v1/text-to-speech/{voice_id}/stream` streams raw audio;
`POST .../stream/with-timestamps` (ElevenLabsHttpTTSService) streams one JSON object
per line: `audio_base64` + `alignment`/`normalized_alignment` (characters,
character_start_times_seconds, character_end_times_seconds, from the utterance start).
Audio is real PCM (see synth.py) in the requested `pcm_RATE` / `ulaw_8000` format.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.loopback import LoopbackServer, Received, WsSender, json_error, received
from tests.fakes.synth import Speech, chunks, parse_output_format, synthesize, to_ulaw

SCHEDULE_FIRST = 120  # chunk_length_schedule[0]: chars buffered before generating (auto_mode off)


@dataclass
class TTSSocket:
    request: Received
    voice_id: str
    multi: bool
    sent: list[dict[str, Any]] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)  # context → all text received
    audio: dict[str, bytearray] = field(default_factory=dict)  # context → audio sent
    voice_settings: dict[str, Any] = field(default_factory=dict)  # context → settings at init
    closed_contexts: list[str] = field(default_factory=list)

    @property
    def messages(self) -> list[Any]:
        return self.request.messages


class FakeElevenLabs(LoopbackServer):
    def __init__(self, *, api_key: str | None = None, voice: str = "tone", chunk_secs: float = 0.2) -> None:
        super().__init__()
        self.api_key = api_key
        self.voice = voice  # "tone" or "espeak" (see synth.py)
        self.chunk_secs = chunk_secs
        self.sockets: list[TTSSocket] = []

    def routes(self) -> list[web.RouteDef]:
        base = "/v1/text-to-speech/{voice_id}"
        return [web.get(f"{base}/stream-input", self._ws), web.get(f"{base}/multi-stream-input", self._ws),
                web.post(f"{base}/stream", self._http), web.post(f"{base}/stream/with-timestamps", self._http)]

    def _refusal(self, request: web.Request, key: str | None) -> web.Response | None:
        if not key or (self.api_key and key != self.api_key):
            return json_error(401, {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}})
        status = self.faults.refusal()
        if status is not None:
            return json_error(status, {"detail": {"status": "fake_refusal", "message": f"refused with {status}"}})
        return None

    def _speech(self, text: str, output_format: str) -> tuple[Speech, str]:
        codec, rate = parse_output_format(output_format) or ("", 0)
        return synthesize(text, rate, self.voice), codec

    # -- websockets --------------------------------------------------------------
    async def _ws(self, request: web.Request) -> web.StreamResponse:
        sock = TTSSocket(received(request), request.match_info["voice_id"],
                         request.path.endswith("multi-stream-input"))
        self.sockets.append(sock)
        await self.changed()
        refusal = self._refusal(request, request.headers.get("xi-api-key") or request.query.get("authorization"))
        if refusal is not None:
            return refusal
        fmt = request.query.get("output_format", "mp3_44100_128")
        if parse_output_format(fmt) is None:
            return json_error(400, {"detail": {"status": "invalid_output_format", "message": f"fake has no {fmt}"}})
        ws = await self.open_ws(request)
        sender = WsSender(ws, request, self.faults, sock.sent)
        auto = request.query.get("auto_mode") == "true"
        buffers: dict[str, str] = {}
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                m = json.loads(msg.data)
                sock.messages.append(m)
                ctx = m.get("context_id", "default") if sock.multi else "default"
                text = m.get("text")
                if m.get("close_socket") or (not sock.multi and text == ""):
                    for c in list(buffers):  # pending flushes finish, then the socket closes
                        await self._generate(sender, sock, c, buffers.pop(c), fmt)
                        await self._final(sender, sock, c)
                    await ws.close(code=1000)
                    break
                if m.get("close_context"):
                    buffers.pop(ctx, None)
                    sock.closed_contexts.append(ctx)
                    await self._final(sender, sock, ctx)
                    continue
                if text == " " and ctx not in buffers:  # opens the context
                    buffers[ctx] = ""
                    sock.texts.setdefault(ctx, "")
                    sock.voice_settings[ctx] = m.get("voice_settings") or {}
                elif text:
                    buffers[ctx] = buffers.get(ctx, "") + text
                    sock.texts[ctx] = sock.texts.get(ctx, "") + text
                pending = buffers.get(ctx, "")
                if pending.strip() and (m.get("flush") or auto or len(pending) >= SCHEDULE_FIRST):
                    buffers[ctx] = ""
                    await self._generate(sender, sock, ctx, pending, fmt)
                await self.changed()
        finally:
            self.forget_ws(ws)
            await self.changed()
        return ws

    async def _generate(self, sender: WsSender, sock: TTSSocket, ctx: str, text: str, fmt: str) -> None:
        if not text.strip():
            return
        speech, codec = self._speech(text, fmt)
        for pcm, a, b in chunks(speech, self.chunk_secs):
            audio = to_ulaw(pcm) if codec == "ulaw" else pcm
            t0, starts, ends = speech.starts[a], speech.starts[a:b], speech.ends[a:b]
            alignment = {"chars": speech.chars[a:b],
                         "charStartTimesMs": [round((s - t0) * 1000) for s in starts],
                         "charDurationsMs": [round((e - s) * 1000) for s, e in zip(starts, ends, strict=True)]}
            message: dict[str, Any] = {"audio": base64.b64encode(audio).decode(),
                                       "normalizedAlignment": alignment, "alignment": alignment}
            if sock.multi:
                message["contextId"] = ctx
            else:
                message["isFinal"] = None
            await sender.send(message)
            sock.audio.setdefault(ctx, bytearray()).extend(audio)
            await self.changed()

    async def _final(self, sender: WsSender, sock: TTSSocket, ctx: str) -> None:
        if sock.multi:
            await sender.send({"isFinal": True, "contextId": ctx})
        else:
            await sender.send({"audio": None, "isFinal": True, "normalizedAlignment": None, "alignment": None})

    # -- HTTP --------------------------------------------------------------------
    async def _http(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        await self.record(request, body)
        refusal = self._refusal(request, request.headers.get("xi-api-key"))
        if refusal is not None:
            return refusal
        fmt = request.query.get("output_format", "mp3_44100_128")
        if parse_output_format(fmt) is None or not body.get("text"):
            return json_error(422, {"detail": {"status": "invalid_request",
                                               "message": "text and a pcm/ulaw output_format are required here"}})
        speech, codec = self._speech(body["text"], fmt)
        pieces = [(to_ulaw(pcm) if codec == "ulaw" else pcm, a, b) for pcm, a, b in chunks(speech, self.chunk_secs)]
        if not request.path.endswith("with-timestamps"):
            kind = "audio/basic" if codec == "ulaw" else "audio/pcm"
            return await self.stream(request, [p for p, _, _ in pieces], kind)
        lines = []
        for audio, a, b in pieces:
            alignment = {"characters": speech.chars[a:b],
                         "character_start_times_seconds": [round(s, 3) for s in speech.starts[a:b]],
                         "character_end_times_seconds": [round(e, 3) for e in speech.ends[a:b]]}
            lines.append(json.dumps({"audio_base64": base64.b64encode(audio).decode(),
                                     "alignment": alignment, "normalized_alignment": alignment}) + "\n")
        return await self.stream(request, lines, "application/json")

    def http_audio(self, text: str, output_format: str = "pcm_24000") -> bytes:
        """The bytes the HTTP endpoints answer for `text` (for exact comparisons)."""
        speech, codec = self._speech(text, output_format)
        return to_ulaw(speech.pcm) if codec == "ulaw" else speech.pcm
