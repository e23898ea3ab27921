"""Voice-to-voice of the cloud cascade (Deepgram → OpenAI → ElevenLabs) on the vendors'
loopback fakes, which add the vendors' published latencies; against a bare Pipecat
pipeline built from the same Pipecat services on the same fakes, in the same run.

Injected latencies (per turn):

- Deepgram Nova-3 live: the final transcript 150 ms after ``Finalize``. Pipecat 1.14
  ships Deepgram's measured p99 time from the end of speech to the final transcript,
  0.35 s, taken with VAD stop_secs 0.2 (``pipecat/services/stt_latency.py``,
  ``DEEPGRAM_TTFS_P99``, measured with pipecat-ai/stt-benchmark); the 0.2 s of VAD
  stop is spent in both pipelines already, which leaves 0.15 s for Deepgram.
- OpenAI gpt-4.1-mini: first token after 600 ms, then 66 tokens/s — the p50 time to
  first token and throughput Vercel's AI Gateway reports on live traffic for OpenAI's
  gpt-4.1-mini (vercel.com/ai-gateway/models/gpt-4.1-mini; Artificial Analysis
  reports 0.93 s at 10k input tokens).
- ElevenLabs Flash v2.5: 75 ms before each sentence's audio ("~75ms",
  elevenlabs.io/docs/overview/models).

Voice-to-voice is measured at the caller's ear (end of the caller's speech → first
agent audio), as in benchmarks/turn_overhead.py. Variants: ``voxline`` (one block per
stage, as ``Services.from_spec`` builds it: each a failover chain of one),
``voxline_chain`` (each stage a healthy two-provider failover chain: what the chain
costs when nothing fails), ``voxline_ungrounded`` (``guardrails.grounding: false``)
and ``bare``. Calls of the variants alternate so machine noise falls on all alike.
An observer on every pipeline notes when each stage of a turn first happened (turn
end, transcript, LLM request, first LLM text, first text at the TTS, first TTS audio,
first audio played), so what voxline adds is located stage by stage.

    python benchmarks/cloud_latency.py [--calls 4] [--turns 5]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

from loguru import logger
from pipecat.frames.frames import (
    LLMContextFrame,
    LLMTextFrame,
    TextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.services.llm_service import LLMService
from pipecat.services.tts_service import TTSService
from pipecat.transports.base_output import BaseOutputTransport

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bare import start_bare, summary, timed_turns  # noqa: E402
from tests.fakes.anthropic_api import FakeAnthropic, MessageReply  # noqa: E402
from tests.fakes.deepgram import FakeDeepgram  # noqa: E402
from tests.fakes.elevenlabs import FakeElevenLabs  # noqa: E402
from tests.fakes.openai_api import ChatReply, FakeOpenAI  # noqa: E402
from voxline.audio import synthesize  # noqa: E402
from voxline.pipelines.builder import Services  # noqa: E402
from voxline.pipelines.session import CallSession  # noqa: E402
from voxline.spec import parse_spec  # noqa: E402
from voxline.transports.simulated import CallerLine, SimulatedTransport  # noqa: E402

RATE = 16000
DEEPGRAM_FINAL_SECS = 0.15
LLM_TTFT_SECS, LLM_TOKENS_PER_SEC = 0.600, 66.0
TTS_FIRST_AUDIO_SECS = 0.075
HEARD = "When do you open today?"
ANSWER = "We open at noon. The kitchen closes at ten."
FIRST_SENTENCE_TOKENS = 4  # "We open at noon." reaches the TTS after these
INJECTED_MS = (DEEPGRAM_FINAL_SECS + LLM_TTFT_SECS + FIRST_SENTENCE_TOKENS / LLM_TOKENS_PER_SEC
               + TTS_FIRST_AUDIO_SECS) * 1000
VOICE = "21m00Tcm4TlvDq8ikWAM"
KEYS = {"OPENAI_API_KEY": "sk-bench", "ANTHROPIC_API_KEY": "ak-bench", "DEEPGRAM_API_KEY": "dg-bench",
        "ELEVENLABS_API_KEY": "xi-bench"}


class SlowDeepgram(FakeDeepgram):
    async def _final(self, sender, state, session, *, from_finalize=False, speech_final=False):  # type: ignore[no-untyped-def]
        if from_finalize and state.pending_ms > 0:
            await asyncio.sleep(DEEPGRAM_FINAL_SECS)
        await super()._final(sender, state, session, from_finalize=from_finalize, speech_final=speech_final)


class PacedOpenAI(FakeOpenAI):
    """Chat answers start after the TTFT and stream at the published token rate."""

    async def stream(self, request, chunks, content_type, status=200, headers=None):  # type: ignore[no-untyped-def]
        if request.path.endswith("chat/completions"):
            chunks = self._paced(list(chunks))
        return await super().stream(request, chunks, content_type, status, headers)

    @staticmethod
    async def _paced(chunks):  # type: ignore[no-untyped-def]
        await asyncio.sleep(LLM_TTFT_SECS)
        for i, chunk in enumerate(chunks):
            if i > 1:
                await asyncio.sleep(1 / LLM_TOKENS_PER_SEC)
            yield chunk


class FlashElevenLabs(FakeElevenLabs):
    async def _generate(self, sender, sock, ctx, text, fmt):  # type: ignore[no-untyped-def]
        if text.strip():
            await asyncio.sleep(TTS_FIRST_AUDIO_SECS)
        await super()._generate(sender, sock, ctx, text, fmt)


STAGES = ("turn_end", "transcript", "llm_request", "llm_first_text", "tts_text", "tts_first_audio", "played")


class Stages(BaseObserver):
    """When each stage of a turn first happened, in ms after the VAD heard the caller
    stop: where a pipeline spends the time it adds, stage by stage."""

    def __init__(self) -> None:
        super().__init__()
        self.turns: list[dict[str, float]] = []
        self._stop: float | None = None
        self._seen: dict[str, float] = {}

    async def on_push_frame(self, data: FramePushed) -> None:
        frame, src, now = data.frame, data.source, time.monotonic()
        if isinstance(frame, TextFrame) and isinstance(data.destination, TTSService):
            if self._stop is not None:  # text reaches the TTS after every hop before it
                self._seen.setdefault("tts_text", (now - self._stop) * 1000)
            return
        if not data.first_push:
            return
        if isinstance(frame, UserStartedSpeakingFrame):
            self._stop, self._seen = None, {}
            return
        if isinstance(frame, VADUserStoppedSpeakingFrame):
            self._stop = now
            return
        if self._stop is None:
            return
        stage = None
        if isinstance(frame, UserStoppedSpeakingFrame):
            stage = "turn_end"
        elif isinstance(frame, TranscriptionFrame):
            stage = "transcript"
        elif isinstance(frame, LLMContextFrame):
            stage = "llm_request"
        elif isinstance(frame, LLMTextFrame) and isinstance(src, LLMService):
            stage = "llm_first_text"
        elif isinstance(frame, TTSAudioRawFrame) and isinstance(src, TTSService):
            stage = "tts_first_audio"
        elif isinstance(frame, TTSAudioRawFrame) and isinstance(src, BaseOutputTransport):
            stage = "played"
        if stage and stage not in self._seen:
            self._seen[stage] = (now - self._stop) * 1000
            if stage == "played":
                self.turns.append(dict(self._seen))


class Fakes:
    def __init__(self) -> None:
        self.deepgram = SlowDeepgram([HEARD] * 500, interim_every_ms=None)
        self.openai = PacedOpenAI()
        self.openai.fallback = ChatReply(text=ANSWER)
        self.anthropic = FakeAnthropic()
        self.anthropic.fallback = MessageReply(text=ANSWER)
        self.elevenlabs = FlashElevenLabs()
        self.all = [self.deepgram, self.openai, self.anthropic, self.elevenlabs]

    async def start(self) -> None:
        for f in self.all:
            await f.start()

    async def stop(self) -> None:
        for f in self.all:
            await f.stop()


def spec(f: Fakes, chain: bool, grounding: bool = True):  # type: ignore[no-untyped-def]
    stt = {"provider": "deepgram", "base_url": f.deepgram.url}
    llm = {"provider": "openai", "model": "gpt-4.1-mini", "base_url": f"{f.openai.url}/v1"}
    tts = {"provider": "elevenlabs", "voice": VOICE, "base_url": f.elevenlabs.url}
    if chain:
        stt = [stt, {"provider": "openai", "base_url": f"{f.openai.url}/v1"}]
        llm = [llm, {"provider": "anthropic", "base_url": f.anthropic.url}]
        tts = [tts, {"provider": "openai", "base_url": f"{f.openai.url}/v1"}]
    return parse_spec({
        "name": "bench", "prompt": "You answer briefly.", "stt": stt, "llm": llm, "tts": tts,
        "turn": {"strategy": "silence", "stop_secs": 0.3}, "vad": {"stop_secs": 0.2},
        "idle": {"reprompt_after_secs": 600}, "guardrails": {"grounding": grounding},
    })


def bare_services(f: Fakes) -> Services:
    """The same Pipecat services, built by hand: nothing of voxline's."""
    from pipecat.services.deepgram.stt import DeepgramSTTService
    from pipecat.services.elevenlabs.tts import ElevenLabsTTSService
    from pipecat.services.openai.llm import OpenAILLMService

    return Services(
        stt=DeepgramSTTService(api_key=KEYS["DEEPGRAM_API_KEY"], base_url=f.deepgram.url),
        llm=OpenAILLMService(api_key=KEYS["OPENAI_API_KEY"], base_url=f"{f.openai.url}/v1",
                             settings=OpenAILLMService.Settings(model="gpt-4.1-mini")),
        tts=ElevenLabsTTSService(api_key=KEYS["ELEVENLABS_API_KEY"], url=f.elevenlabs.ws_url,
                                 settings=ElevenLabsTTSService.Settings(voice=VOICE)),
    )


async def one_call(kind: str, f: Fakes, speech: bytes, turns: int, stages: Stages) -> list[float]:
    line = CallerLine(sample_rate=RATE)
    if kind == "bare":
        task, handle = await start_bare(spec(f, False), line, bare_services(f), rate=RATE, observers=[stages])
    else:
        handle = CallSession(spec(f, kind == "voxline_chain", grounding=kind != "voxline_ungrounded"),
                             SimulatedTransport(line), audio_in_sample_rate=RATE, audio_out_sample_rate=RATE,
                             observers=[stages])
        task = asyncio.create_task(handle.run())
    await asyncio.sleep(1.5)
    samples = await timed_turns(line, speech, turns, listen_secs=3.5)  # ~3 s of answer
    if kind == "bare":
        await handle.cancel()
    else:
        await handle.end("benchmark_done", now=True)
    await asyncio.wait_for(task, 15)
    return samples


async def main(calls: int, turns: int) -> dict:
    logger.remove()
    logger.add(sys.stderr, level="CRITICAL")
    os.environ.update(KEYS)
    speech = bytes(int(RATE * 0.3) * 2) + synthesize(HEARD, RATE)
    fakes = Fakes()
    await fakes.start()
    kinds = ["voxline", "voxline_chain", "voxline_ungrounded", "bare"]
    v2v: dict[str, list[float]] = {k: [] for k in kinds}
    stages = {k: Stages() for k in kinds}
    try:
        for i in range(calls):
            for kind in kinds[i % len(kinds):] + kinds[:i % len(kinds)]:
                v2v[kind] += await one_call(kind, fakes, speech, turns, stages[kind])
    finally:
        await fakes.stop()
    stats = {k: summary(xs) for k, xs in v2v.items()}
    # Each stage's p50 time after the VAD stop, and what each variant adds over bare.
    at = {k: {s: round(statistics.median([t[s] for t in stages[k].turns if s in t]), 1)
              for s in STAGES if any(s in t for t in stages[k].turns)} for k in kinds}
    vox, chain, ungrounded, bare = (stats[k]["p50"] for k in kinds)
    return {
        "benchmark": "cloud_latency",
        "cascade": "deepgram nova-3 -> openai gpt-4.1-mini -> elevenlabs flash v2.5 (loopback fakes)",
        "injected_ms": {"deepgram_final_after_finalize": DEEPGRAM_FINAL_SECS * 1000,
                        "llm_ttft": LLM_TTFT_SECS * 1000, "llm_tokens_per_sec": LLM_TOKENS_PER_SEC,
                        "tts_first_audio": TTS_FIRST_AUDIO_SECS * 1000,
                        "per_turn_to_first_audio": round(INJECTED_MS, 1)},
        "fixed_turn_taking_ms": {"vad_stop": 200, "turn_stop": 300},
        "voice_to_voice_ms": stats,
        "ratio_p50": {"voxline_vs_bare": round(vox / bare, 3), "voxline_chain_vs_bare": round(chain / bare, 3),
                      "voxline_ungrounded_vs_bare": round(ungrounded / bare, 3)},
        "added_by_voxline_ms_p50": round(vox - bare, 1),
        "added_by_failover_chain_ms_p50": round(chain - vox, 1),
        # The grounding guardrail holds each clause until it ends; the TTS then waits
        # for the next clause's first letter to know a sentence is over.
        "added_by_grounding_ms_p50": round(vox - ungrounded, 1),
        # Voice-to-voice less the injected vendor latencies: turn-taking (VAD stop, turn
        # stop, which the Deepgram final overlaps) plus what each pipeline itself costs.
        "not_vendor_ms_p50": {k: round(stats[k]["p50"] - INJECTED_MS, 1) for k in kinds},
        "voxline_share_of_voice_to_voice": round((vox - bare) / vox, 4),
        "stage_ms_after_vad_stop_p50": at,
        "stage_added_vs_bare_ms_p50": {k: {s: round(at[k][s] - at["bare"][s], 1) for s in at[k] if s in at["bare"]}
                                       for k in kinds if k != "bare"},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=4)
    parser.add_argument("--turns", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.calls, args.turns))))
