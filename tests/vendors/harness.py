"""A small real Pipecat pipeline around the service under test.

    async with run_pipeline(service) as run:
        await run.send(TTSSpeakFrame("Hello."))
        await run.down.wait_for(TTSStoppedFrame)

`run.down` records every frame that leaves the pipeline downstream, `run.up` every
frame that reaches its head upstream (errors). Tests wait on frames, not on clocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pipecat.frames.frames import EndFrame, Frame, InputAudioRawFrame
from pipecat.metrics.metrics import LLMUsageMetricsData
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from tests.services import service_unavailable

F = TypeVar("F", bound=Frame)

# LibriVox-style read speech shipped by Debian's pocketsphinx-testdata: 16 kHz int16 mono.
GO_FORWARD = Path("/usr/share/pocketsphinx/test/data/goforward.raw")
GO_FORWARD_TEXT = "go forward ten meters"


def speech_16k() -> bytes:
    if not GO_FORWARD.exists():
        service_unavailable("pocketsphinx-testdata is not installed (real speech for STT tests)")
    return GO_FORWARD.read_bytes()


def audio_frames(pcm: bytes, sample_rate: int = 16000, chunk_ms: int = 20) -> list[InputAudioRawFrame]:
    step = sample_rate * 2 * chunk_ms // 1000
    return [InputAudioRawFrame(pcm[i:i + step], sample_rate, 1) for i in range(0, len(pcm), step)]


class Collect(FrameProcessor):
    """Records the frames passing in one direction; lets a test wait for one."""

    def __init__(self, direction: FrameDirection) -> None:
        super().__init__()
        self.direction = direction
        self.frames: list[Frame] = []
        self._cond = asyncio.Condition()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == self.direction:
            self.frames.append(frame)
            async with self._cond:
                self._cond.notify_all()
        await self.push_frame(frame, direction)

    def of(self, kind: type[F]) -> list[F]:
        return [f for f in self.frames if isinstance(f, kind)]

    async def wait_for(self, kind: type[F], where: Callable[[F], bool] = lambda f: True,
                       timeout: float = 15.0) -> F:
        def found() -> F | None:
            return next((f for f in self.of(kind) if where(f)), None)

        async with self._cond:
            await asyncio.wait_for(self._cond.wait_for(lambda: found() is not None), timeout)
        frame = found()
        assert frame is not None
        return frame

    def usage(self) -> list[Any]:
        """Token usage reported in MetricsFrames (needs metrics=True)."""
        return [d.value for f in self.frames for d in getattr(f, "data", [])
                if isinstance(d, LLMUsageMetricsData)]


@dataclass
class Run:
    worker: PipelineWorker
    down: Collect
    up: Collect

    async def send(self, *frames: Frame) -> None:
        for frame in frames:
            await self.worker.queue_frame(frame)


@asynccontextmanager
async def run_pipeline(*processors: FrameProcessor, audio_in: int = 16000, audio_out: int = 24000,
                       metrics: bool = False) -> AsyncIterator[Run]:
    up, down = Collect(FrameDirection.UPSTREAM), Collect(FrameDirection.DOWNSTREAM)
    worker = PipelineWorker(
        Pipeline([up, *processors, down]),
        params=PipelineParams(audio_in_sample_rate=audio_in, audio_out_sample_rate=audio_out,
                              enable_metrics=metrics, enable_usage_metrics=metrics),
        idle_timeout_secs=None, cancel_on_idle_timeout=False, enable_rtvi=False,
        enable_turn_tracking=False,
    )
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def _started(_worker: PipelineWorker, _frame: Frame) -> None:
        started.set()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    task = asyncio.create_task(runner.run())
    try:
        waiter = asyncio.create_task(started.wait())
        done, _ = await asyncio.wait([task, waiter], timeout=15, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if task in done:
            task.result()
        assert started.is_set(), "pipeline did not start"
        yield Run(worker, down, up)
    finally:
        if not task.done():
            await worker.queue_frame(EndFrame())
            try:
                await asyncio.wait_for(asyncio.shield(task), 15)
            except TimeoutError:
                await worker.cancel()
                await task
