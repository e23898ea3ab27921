"""The team's LLMs behind one Pipecat ServiceSwitcher (see handoff.py)."""

from __future__ import annotations

from typing import Any

from pipecat.frames.frames import LLMContextFrame, TTSSpeakFrame
from pipecat.pipeline.service_switcher import ServiceSwitcher, ServiceSwitcherStrategyManual
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection


class TeamLLM(ServiceSwitcher):
    """The team's LLMs behind one switcher, with the function-registration API the
    builder and the call host use (registered on every member: each agent's own tools
    are then put back on its own LLM by the team)."""

    def __init__(self, llms: list[Any]):
        super().__init__(list(llms), ServiceSwitcherStrategyManual)
        # Said before the next answer, kept out of the context (a language persona's greeting):
        # here, once the caller's turn is over, it cannot be taken for speech over the caller.
        self.say_first: str | None = None

    async def process_frame(self, frame: Any, direction: FrameDirection) -> None:
        if self.say_first and isinstance(frame, LLMContextFrame) and direction is FrameDirection.DOWNSTREAM:
            text, self.say_first = self.say_first, None
            # Into the answering LLM's own queue: behind the switch of voice already in it.
            await self.active.queue_frame(TTSSpeakFrame(text, append_to_context=False))
        await super().process_frame(frame, direction)

    @property
    def active(self) -> Any:
        return self.strategy.active_service

    def register_function(self, name: str | None, handler: Any, *args: Any, **kwargs: Any) -> None:
        for llm in self.services:
            llm.register_function(name, handler, *args, **kwargs)

    def unregister_function(self, name: str | None) -> None:
        for llm in self.services:
            llm.unregister_function(name)

    def has_function(self, name: str) -> bool:
        return bool(self.active.has_function(name))

    @property
    def keeps_prefixes(self) -> bool:
        return bool(getattr(self.active, "keeps_prefixes", False))

    async def warm_up(self, context: LLMContext, **kwargs: Any) -> bool:
        warm = getattr(self.active, "warm_up", None)
        return bool(await warm(context, **kwargs)) if warm is not None else False

    async def run_inference(self, context: LLMContext, **kwargs: Any) -> str | None:
        return await self.active.run_inference(context, **kwargs)  # type: ignore[no-any-return]

    async def summarize(self, prompt: str, max_tokens: int = 300) -> str:
        own = getattr(self.active, "summarize", None)
        if own is not None:
            return str(await own(prompt, max_tokens=max_tokens))
        answer = await self.active.run_inference(
            LLMContext(messages=[{"role": "user", "content": prompt}]), max_tokens=max_tokens)
        return answer or ""


def one_or_switched(services: list[Any]) -> Any:
    return services[0] if len(services) == 1 else ServiceSwitcher(services, ServiceSwitcherStrategyManual)
