"""What the latency benchmarks share: the baseline (the same cascade written directly
with Pipecat, nothing of voxline's in between), the caller's turns timed at the ear,
and the summary of a list of samples."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.workers.runner import WorkerRunner

from voxline.pipelines.builder import Services, turn_strategies, vad_analyzer
from voxline.spec import AgentSpec
from voxline.transports.simulated import CallerLine, SimulatedTransport


async def start_bare(spec: AgentSpec, line: CallerLine, services: Services, *, rate: int,
                     observers: list[Any] | None = None) -> tuple[asyncio.Task[None], PipelineWorker]:
    """The cascade as a Pipecat user would write it: transport, STT, aggregators, LLM, TTS."""
    transport = SimulatedTransport(line)
    aggregators = LLMContextAggregatorPair(
        LLMContext(messages=[{"role": "system", "content": spec.system_prompt}]),
        user_params=LLMUserAggregatorParams(vad_analyzer=vad_analyzer(spec),
                                            user_turn_strategies=turn_strategies(spec)),
    )
    pipeline = Pipeline([transport.input(), services.stt, aggregators.user(), services.llm,
                         services.tts, transport.output(), aggregators.assistant()])
    worker = PipelineWorker(pipeline, params=PipelineParams(
        audio_in_sample_rate=rate, audio_out_sample_rate=rate, enable_metrics=True,
        enable_usage_metrics=True), idle_timeout_secs=None, enable_rtvi=False, observers=observers or [])
    runner = WorkerRunner(handle_sigint=False, check_dangling_tasks=False)

    async def run() -> None:
        await runner.add_workers(worker)
        await runner.run()

    return asyncio.create_task(run()), worker


async def timed_turns(line: CallerLine, speech: bytes, turns: int, *, listen_secs: float) -> list[float]:
    """Voice-to-voice of each turn at the caller's ear (ms): end of speech → first agent audio."""
    samples = []
    for _ in range(turns):
        await line.say(speech).wait()
        spoke_at = line.last_speech_sent_at
        deadline, first = time.monotonic() + 10, None
        while first is None and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
            first = line.first_speech_after(spoke_at)
        if first is not None:
            samples.append((first - spoke_at) * 1000)
        await asyncio.sleep(listen_secs)  # the answer plays out
    return samples


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"n": len(values), "p50": round(statistics.median(values), 1),
            "p95": round(pick(0.95), 1), "mean": round(statistics.fmean(values), 1)}
