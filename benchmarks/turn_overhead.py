"""Framework overhead per turn: voxline's pipeline against a bare Pipecat pipeline.

Both pipelines get the same caller audio in real time, the same real Silero VAD and
turn settings, and the same fake STT / LLM / TTS, which sleep a fixed time and then
answer. Voice-to-voice is measured at the caller's ear: from the last frame of the
caller's speech to the first frame of the agent's audio. Subtracting the injected
latencies leaves what the frameworks themselves cost, including the VAD's stop delay
and the turn timeout, which are the same for both. Calls of the two pipelines
alternate so that machine noise falls on both alike.

    python benchmarks/turn_overhead.py [--calls 6] [--turns 6]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncGenerator
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
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.llm_service import LLMService
from pipecat.services.stt_service import SegmentedSTTService
from pipecat.services.tts_service import TTSService
from pipecat.utils.time import time_now_iso8601

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bare import start_bare, summary, timed_turns  # noqa: E402
from voxline.audio import synthesize  # noqa: E402
from voxline.pipelines.builder import Services  # noqa: E402
from voxline.pipelines.session import CallSession  # noqa: E402
from voxline.spec import parse_spec  # noqa: E402
from voxline.transports.simulated import CallerLine, SimulatedTransport  # noqa: E402

RATE = 16000
STT_SECS, LLM_SECS, TTS_SECS = 0.150, 0.300, 0.080
INJECTED_MS = (STT_SECS + LLM_SECS + TTS_SECS) * 1000

SPEC = parse_spec({
    "name": "bench",
    "prompt": "You answer briefly.",
    "turn": {"strategy": "silence", "stop_secs": 0.3},
    "vad": {"stop_secs": 0.2},
    "idle": {"reprompt_after_secs": 600},
})


class FixedSTT(SegmentedSTTService):
    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        await asyncio.sleep(STT_SECS)
        yield TranscriptionFrame("What time do you open?", "caller", time_now_iso8601())


class FixedLLM(LLMService):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            await self.push_frame(LLMFullResponseStartFrame())
            await asyncio.sleep(LLM_SECS)
            await self.push_frame(LLMTextFrame("We open at noon every day."))
            await self.push_frame(LLMFullResponseEndFrame())
        else:
            await self.push_frame(frame, direction)


class FixedTTS(TTSService):
    def __init__(self, **kwargs):
        super().__init__(push_start_frame=True, push_stop_frames=True, sample_rate=RATE, **kwargs)

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        await asyncio.sleep(TTS_SECS)
        for _ in range(10):  # 0.5 s of a loud square wave, in 50 ms frames
            yield TTSAudioRawFrame((b"\x00\x30" * 400 + b"\x00\xd0" * 400), RATE, 1,
                                   context_id=context_id)


def fakes() -> Services:
    return Services(stt=FixedSTT(sample_rate=RATE), llm=FixedLLM(), tts=FixedTTS())


async def run_voxline(line: CallerLine) -> tuple[asyncio.Task, object]:
    session = CallSession(SPEC, SimulatedTransport(line), services=fakes())
    return asyncio.create_task(session.run()), session


async def one_call(kind: str, speech: bytes, turns: int) -> list[float]:
    line = CallerLine(sample_rate=RATE)
    if kind == "voxline":
        task, handle = await run_voxline(line)
    else:
        task, handle = await start_bare(SPEC, line, fakes(), rate=RATE)
    await asyncio.sleep(1.0)
    samples = await timed_turns(line, speech, turns, listen_secs=1.2)
    if kind == "voxline":
        await handle.end("benchmark_done")
    else:
        await handle.cancel()
    await asyncio.wait_for(task, 10)
    return samples


async def main(calls: int, turns: int) -> dict:
    logger.remove()
    logger.add(sys.stderr, level="CRITICAL")  # the fakes leave optional settings unset
    speech = bytes(int(RATE * 0.3) * 2) + synthesize("What time do you open today?", RATE)
    v2v: dict[str, list[float]] = {"voxline": [], "bare": []}
    for i in range(calls):
        for kind in (("voxline", "bare") if i % 2 == 0 else ("bare", "voxline")):
            v2v[kind] += await one_call(kind, speech, turns)
    overhead = {k: [x - INJECTED_MS for x in xs] for k, xs in v2v.items()}
    vox, bare = summary(overhead["voxline"]), summary(overhead["bare"])
    return {
        "benchmark": "turn_overhead",
        "baseline": "bare pipecat 1.14 pipeline, same fakes, VAD and turn settings",
        "injected_ms": {"stt": STT_SECS * 1000, "llm": LLM_SECS * 1000, "tts": TTS_SECS * 1000},
        "fixed_turn_taking_ms": {"vad_stop": SPEC.vad.stop_secs * 1000,
                                 "turn_stop": SPEC.turn.stop_secs * 1000},
        "voice_to_voice_ms": {k: summary(xs) for k, xs in v2v.items()},
        "overhead_ms": {"voxline": vox, "bare": bare},
        "overhead_ratio_p50": round(vox["p50"] / bare["p50"], 3),
        "added_by_voxline_ms": {"p50": round(vox["p50"] - bare["p50"], 1),
                                "p95": round(vox["p95"] - bare["p95"], 1)},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=6)
    parser.add_argument("--turns", type=int, default=6)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.calls, args.turns))))
