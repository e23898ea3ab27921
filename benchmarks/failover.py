"""Failover: the extra silence a caller hears when a provider fails mid-call.

For each stage (LLM, TTS, STT) the primary provider hangs (no first byte), answers
500 on every request, or stalls after its first chunk; the chain's fallback takes the
turn over. Each trial is paired with one where the fallback serves alone, on the same
fakes (the vendors' loopback fakes in tests/fakes, through Pipecat's real services and
the vendors' SDKs), and the extra silence is the difference:

- LLM and TTS: the silence the caller hears before the answer has been played in full
  (the output audio replayed in real time: waiting for the first audio, plus every gap
  in it), from the moment the context reaches the LLM / the text reaches the TTS;
- STT: the end of speech (VAD stop) to the final transcript; what follows it (LLM, TTS)
  is the same with or without the failover.

Retry settings are the spec defaults (attempts 2, backoff 0.1 s, attempt and stall
timeouts 0.8 s). Target: extra silence ≤ 1000 ms at p95.

    python benchmarks/failover.py [--trials 10]

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
    Frame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.anthropic_api import FakeAnthropic, MessageReply  # noqa: E402
from tests.fakes.deepgram import FakeDeepgram  # noqa: E402
from tests.fakes.elevenlabs import FakeElevenLabs  # noqa: E402
from tests.fakes.openai_api import ChatReply, FakeOpenAI  # noqa: E402
from tests.vendors.harness import audio_frames, run_pipeline  # noqa: E402
from voxline.audio import synthesize  # noqa: E402
from voxline.integrations.providers.registry import build_chain  # noqa: E402
from voxline.spec import LLMBlock, STTBlock, TTSBlock  # noqa: E402

ANSWER = "We open at noon. The kitchen closes at ten."
HEARD = "When do you open?"
VOICE = "21m00Tcm4TlvDq8ikWAM"
RATE = 16000
KEYS = {"OPENAI_API_KEY": "sk-bench", "ANTHROPIC_API_KEY": "ak-bench", "DEEPGRAM_API_KEY": "dg-bench",
        "ELEVENLABS_API_KEY": "xi-bench"}
CHAINS = {"llm": ("openai", "anthropic"), "tts": ("elevenlabs", "openai"), "stt": ("deepgram", "openai")}
KINDS = ("hang", "500", "stall")


class Timeline(FrameProcessor):
    """Stamps the frames leaving the pipeline."""

    def __init__(self) -> None:
        super().__init__()
        self.audio: list[tuple[float, float]] = []  # (arrival, seconds of audio)
        self.transcripts: list[float] = []
        self.done = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        now = time.monotonic()
        if isinstance(frame, TTSAudioRawFrame):
            self.audio.append((now, len(frame.audio) / (2 * frame.sample_rate)))
        elif isinstance(frame, TranscriptionFrame):
            self.transcripts.append(now)
            self.done.set()
        elif isinstance(frame, LLMFullResponseEndFrame) and direction == FrameDirection.DOWNSTREAM:
            self.done.set()
        await self.push_frame(frame, direction)

    def silence(self, start: float) -> float:
        """Silence a caller hears from ``start`` until the audio has all been played."""
        clock, quiet = start, 0.0
        for arrival, secs in self.audio:
            if arrival > clock:
                quiet += arrival - clock
                clock = arrival
            clock += secs
        return quiet


def _break(fake: object, kind: str) -> None:
    faults = fake.faults  # type: ignore[attr-defined]
    if kind == "hang":
        faults.first_byte_delay = 30.0
    elif kind == "500":
        faults.status = 500
    elif kind == "stall":
        faults.stall_after_first_chunk = True


class Fakes:
    def __init__(self, stt_stall: bool = False) -> None:
        self.openai = FakeOpenAI(transcripts=[HEARD] * 50)
        self.openai.fallback = ChatReply(text=ANSWER)
        self.anthropic = FakeAnthropic()
        self.anthropic.fallback = MessageReply(text=ANSWER)
        self.elevenlabs = FakeElevenLabs()
        self.deepgram = FakeDeepgram([HEARD] * 50, interim_every_ms=300 if stt_stall else None)
        self.all = [self.openai, self.anthropic, self.elevenlabs, self.deepgram]

    async def __aenter__(self) -> Fakes:
        for f in self.all:
            await f.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for f in self.all:
            await f.stop()

    def block(self, kind: str, provider: str) -> object:
        url = {"openai": f"{self.openai.url}/v1", "anthropic": self.anthropic.url,
               "elevenlabs": self.elevenlabs.url, "deepgram": self.deepgram.url}[provider]
        cls = {"stt": STTBlock, "llm": LLMBlock, "tts": TTSBlock}[kind]
        return cls(provider=provider, base_url=url, **({"voice": VOICE} if provider == "elevenlabs" else {}))


def _chain(fakes: Fakes, stage: str, alone: bool) -> object:
    primary, fallback = CHAINS[stage]
    blocks = [fakes.block(stage, fallback)] if alone else [fakes.block(stage, primary), fakes.block(stage, fallback)]
    kwargs = {"stt": {"language": "en"}, "llm": {"max_tool_calls_per_turn": 2}, "tts": {}}[stage]
    return build_chain(stage, blocks, **kwargs)


async def trial(stage: str, kind: str, alone: bool, speech: bytes) -> float:
    """Seconds of silence (LLM, TTS) or of waiting for the transcript (STT)."""
    async with Fakes(stt_stall=stage == "stt" and kind == "stall") as fakes:
        if not alone:
            _break(getattr(fakes, CHAINS[stage][0]), kind)
        chain = _chain(fakes, stage, alone)
        out = Timeline()
        if stage == "llm":
            tts = build_chain("tts", [fakes.block("tts", "elevenlabs")])
            processors = [chain, tts, out]
        else:
            processors = [chain, out]
        async with run_pipeline(*processors, audio_out=RATE, metrics=True) as run:
            await asyncio.sleep(0.3)  # websockets up, as in a call that has started
            if stage == "stt":
                await run.send(VADUserStartedSpeakingFrame(), *audio_frames(speech))
                await asyncio.sleep(0.3)
                start = time.monotonic()
                await run.send(VADUserStoppedSpeakingFrame(stop_secs=0.2))
                await asyncio.wait_for(out.done.wait(), 15)
                result = out.transcripts[0] - start
            else:
                start = time.monotonic()
                if stage == "llm":
                    await run.send(LLMContextFrame(LLMContext(messages=[{"role": "user", "content": HEARD}])))
                else:
                    await run.send(LLMFullResponseStartFrame(),
                                   *[LLMTextFrame(w + " ") for w in ANSWER.split(" ")], LLMFullResponseEndFrame())
                await asyncio.wait_for(out.done.wait(), 15)
                await asyncio.sleep(0.3)  # the last audio
                result = out.silence(start)
            for fake in fakes.all:
                fake.faults.release()
        return result


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"n": len(values), "p50": round(statistics.median(values), 1), "p95": round(pick(0.95), 1),
            "max": round(ordered[-1], 1)}


async def main(trials: int) -> dict:
    logger.remove()
    logger.add(sys.stderr, level="CRITICAL")
    import logging

    logging.getLogger("voxline.failover").setLevel(logging.ERROR)
    logging.getLogger("aiohttp").setLevel(logging.CRITICAL)
    os.environ.update(KEYS)
    speech = synthesize(HEARD, RATE)
    results: dict[str, dict] = {}
    worst = 0.0
    for stage in CHAINS:
        results[stage] = {"primary": CHAINS[stage][0], "fallback": CHAINS[stage][1]}
        for kind in KINDS:
            extra, alone_ms = [], []
            for _ in range(trials):
                base = await trial(stage, kind, True, speech)
                failed = await trial(stage, kind, False, speech)
                alone_ms.append(base * 1000)
                extra.append((failed - base) * 1000)
            results[stage][kind] = {"extra_silence_ms": summary(extra), "fallback_alone_ms": summary(alone_ms)}
            worst = max(worst, results[stage][kind]["extra_silence_ms"]["p95"])
    return {
        "benchmark": "failover",
        "what": "extra silence at the caller vs the healthy fallback alone (paired trials)",
        "retry": {"attempts": 2, "backoff_secs": 0.1, "attempt_timeout_secs": 0.8, "stall_timeout_secs": 0.8},
        "trials": trials,
        "stages": results,
        "worst_p95_ms": round(worst, 1),
        "target_p95_ms": 1000,
        "meets_target": worst <= 1000,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.trials))))
