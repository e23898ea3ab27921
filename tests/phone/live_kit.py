"""Kit for calls on the real local models: LibriVox speech, WER, an agent on Whisper,
Piper and Silero with an OpenAI-protocol LLM on loopback, and one Twilio-like call.

Shared by tests/phone/test_real_models.py and benchmarks/phone_soak.py.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import ssl
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
import soxr
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from tests.fakes.openai_chat import FakeOpenAIChat, Reply
from tests.fakes.twilio_media import FakeTwilioCall
from tests.fakes.twilio_rest import FakeTwilioRest, stream_of

RATE = 8000
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
ACCOUNT = "AC00000000000000000000000000000000"
TOKEN = "test-token"
NUMBER = "+15550001111"
GREETING = "Hello, thanks for calling."
ANSWER = "Sure, I can help with that."
PAD_SECS = 0.1  # silence after each question


# -- real speech -------------------------------------------------------------------
@dataclass(frozen=True)
class Clip:
    name: str  # e.g. sense_and_sensibility_01_austen_64kb-0880
    text: str  # the reference transcript
    pcm: bytes  # 16-bit mono 8 kHz PCM

    @property
    def secs(self) -> float:
        return len(self.pcm) / 2 / RATE


@functools.lru_cache(maxsize=1)
def librivox_clips() -> tuple[Clip, ...]:
    """Debian pocketsphinx-testdata's LibriVox clips (16 kHz), as 8 kHz phone audio."""
    transcripts = {}
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        m = re.match(r"<s>(.*)</s>\s*\((\S+)\)", line.strip())
        if m:
            transcripts[m.group(2)] = m.group(1).strip()
    clips = []
    for name, text in sorted(transcripts.items()):
        samples, rate = sf.read(LIBRIVOX / f"{name}.wav", dtype="float32")
        out = soxr.resample(samples, rate, RATE, quality="HQ") * 32768.0
        clips.append(Clip(name, text, np.clip(out, -32768, 32767).astype(np.int16).tobytes()))
    return tuple(clips)


def clip(suffix: str) -> Clip:
    return next(c for c in librivox_clips() if c.name.endswith(suffix))


def silence(secs: float) -> bytes:
    return b"\x00\x00" * int(RATE * secs)


# -- word error rate -----------------------------------------------------------------
_SPELLED = {"mr": "mister", "mrs": "missus", "dr": "doctor"}


def words(text: str) -> list[str]:
    """Lower case, no punctuation, hyphenated words split, common abbreviations spelled."""
    tokens = re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()
    return [_SPELLED.get(t, t) for t in tokens]


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: (substitutions + deletions + insertions) / reference words."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(1, len(ref))


# -- the LLM on loopback -------------------------------------------------------------
class FakeLLM(FakeOpenAIChat):
    """FakeOpenAIChat plus non-streamed answers (the call summary at call end asks for
    one): a JSON summary, as a model asked for one would answer."""

    async def _completions(self, request: Request):  # type: ignore[no-untyped-def]
        body = await request.json()
        if body.get("stream"):
            return await super()._completions(request)  # (the request caches its JSON)
        self.requests.append(body)
        content = json.dumps({"summary": "The caller asked a question.", "facts": []})
        return JSONResponse({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": "fake-model", "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
        })

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self._completions, methods=["POST"])])


def fake_llm(answer: str = ANSWER) -> FakeLLM:
    return FakeLLM(fallback=Reply(text=answer))


# -- the agent -------------------------------------------------------------------------
def real_agent(llm_base_url: str, *, name: str = "frontdesk", greeting: str = GREETING,
               turn: dict | None = None) -> dict:
    """An agent on the real local models (Whisper base, Piper, Silero VAD) whose LLM is
    an OpenAI-compatible server at ``llm_base_url`` (http://127.0.0.1:PORT/v1)."""
    return {
        "name": name,
        "greeting": greeting,
        "prompt": "You answer the phone for a small business. Keep answers short.",
        "stt": {"provider": "whisper"},
        "llm": {"provider": "openai_compatible", "base_url": llm_base_url, "model": "fake-model"},
        "tts": {"provider": "piper"},
        # VAD: the spec's defaults. The turn ends after a silence, not by Smart Turn's
        # judgement, so every call of a run takes the same path.
        "turn": turn or {"strategy": "silence", "stop_secs": 0.4},
        "idle": {"reprompt_after_secs": 60, "max_reprompts": 0},
        "tools": [{"name": "end_call", "handler": "builtin:end_call"}],
    }


def write_real_agents(root: Path, llm_base_url: str, **options: object) -> Path:
    spec = real_agent(llm_base_url, **options)  # type: ignore[arg-type]
    (root / spec["name"]).mkdir(parents=True, exist_ok=True)
    (root / spec["name"] / "agent.yaml").write_text(yaml.safe_dump(spec))
    (root / "routes.yaml").write_text(yaml.safe_dump({"numbers": {NUMBER: spec["name"]}}))
    return root


# -- process memory ------------------------------------------------------------------
def rss_mb(pid: int | str = "self") -> float:
    """Resident set size (VmRSS) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


# -- one call --------------------------------------------------------------------------
@dataclass
class CallTiming:
    sid: str
    webhook_ms: float | None = None  # the signed voice webhook's answer
    greeting_ms: float | None = None  # stream `start` -> first greeting audio
    answer_ms: float | None = None  # end of the caller's question -> first answer audio
    answer_from_start_ms: float | None = None  # stream `start` -> first answer audio
    # Agent audio arrived while the caller was asking (the greeting's tail after a stall
    # longer than the quiet window, or an answer to half the question).
    talked_over: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.greeting_ms is not None and self.answer_ms is not None


def new_sid() -> str:
    return "CA" + uuid.uuid4().hex


async def until(predicate, timeout: float, step: float = 0.02) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return bool(predicate())


def _quiet_for(call: FakeTwilioCall, secs: float) -> bool:
    """All agent audio received so far has played and none arrived for ``secs``."""
    if not call.media_arrivals:
        return False
    received = sum(n for _, n in call.media_arrivals)
    return len(call.played) >= received and time.monotonic() - call.media_arrivals[-1][0] >= secs


@functools.lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    """One TLS context for the webhook clients: building one costs ~30 ms of CPU on the
    event loop, which would show up as lag in what the tests measure."""
    return httpx.create_ssl_context()


async def ring(rest: FakeTwilioRest, base: str, sid: str, *, from_: str = "+15557654321",
               auth_token: str = TOKEN) -> FakeTwilioCall:
    """Twilio's signed voice webhook (as FakeTwilioRest.ring sends it), then the
    media-stream client its TwiML asks for."""
    rest.add_inbound(sid, To=NUMBER, From=from_)
    url = base + "/twilio/voice"
    params = {"CallSid": sid, "AccountSid": rest.account_sid, "From": from_, "To": NUMBER,
              "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01"}
    signature = RequestValidator(rest.auth_token).compute_signature(url, params)
    async with httpx.AsyncClient(verify=_tls(), timeout=30) as client:
        response = await client.post(url, data=params, headers={"X-Twilio-Signature": signature})
    if response.status_code != 200:
        raise RuntimeError(f"voice webhook answered {response.status_code}: {response.text[:200]}")
    url, params = stream_of(response.text)
    return FakeTwilioCall(url, call_sid=sid, stream_sid="MZ" + uuid.uuid4().hex, account_sid=ACCOUNT,
                          parameters=params, auth_token=auth_token)


async def question_call(rest: FakeTwilioRest, base: str, question: bytes, *, sid: str | None = None,
                        from_: str = "+15557654321", timeout: float = 30.0,
                        greeting_quiet: float = 0.8) -> CallTiming:
    """Ring, hear the greeting out (no agent audio for ``greeting_quiet`` s), ask
    ``question`` (8 kHz PCM), wait for the first audio of the answer after the question,
    hang up (`stop`). Never raises: failures are in ``error``."""
    timing = CallTiming(sid or new_sid())
    call: FakeTwilioCall | None = None
    try:
        t0 = time.monotonic()
        call = await ring(rest, base, timing.sid, from_=from_)
        timing.webhook_ms = (time.monotonic() - t0) * 1000
        await call.connect()
        if not await until(lambda: call.first_media_at is not None, timeout):
            raise TimeoutError("no greeting audio")
        assert call.first_media_at is not None and call.start_sent_at is not None
        timing.greeting_ms = (call.first_media_at - call.start_sent_at) * 1000
        if not await until(lambda: _quiet_for(call, greeting_quiet), timeout):
            raise TimeoutError("the greeting did not end")
        asked = len(call.media_arrivals)
        call.say(question + silence(PAD_SECS))
        await call.wait_said(timeout)
        said_at = time.monotonic() - PAD_SECS  # the end of the speech
        timing.talked_over = len(call.media_arrivals) > asked

        def answer() -> float | None:
            return next((at for at, _ in call.media_arrivals[asked:] if at >= said_at), None)

        if not await until(lambda: answer() is not None, timeout):
            raise TimeoutError("no answer audio")
        first = answer()
        assert first is not None
        timing.answer_ms = (first - said_at) * 1000
        timing.answer_from_start_ms = (first - call.start_sent_at) * 1000
    except Exception as e:
        timing.error = f"{type(e).__name__}: {e}"[:300]
    finally:
        if call is not None:
            try:
                await call.stop()
            except Exception as e:
                timing.error = timing.error or f"stop: {type(e).__name__}: {e}"[:300]
    return timing


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None
