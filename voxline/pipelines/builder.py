"""AgentSpec → Pipecat pipeline.

The shape is Pipecat's standard cascade; voxline adds named places where an
integrator's own processors go, and the agent's tools with guardrails:

    transport.input → [before_stt] → STT → [before_llm] → user context (VAD, turns)
      → LLM → [after_llm] → [before_tts] → TTS → [before_output] → transport.output
      → [after_output] → assistant context
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import NOT_GIVEN, LLMContext, NotGiven
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.transports.base_transport import BaseTransport
from pipecat.turns.user_start import (
    TranscriptionUserTurnStartStrategy,
    VADUserTurnStartStrategy,
)
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from voxline.integrations.providers.local.silero import SharedSileroVADAnalyzer
from voxline.integrations.providers.registry import build_chain, build_realtime
from voxline.integrations.tools.loader import load_tools
from voxline.integrations.tools.runtime import (
    make_end_call_handler,
    make_handler,
    make_unknown_handler,
)
from voxline.integrations.tools.settings import config_for
from voxline.processors.answer_guard import AnswerGuard
from voxline.processors.call_log import CallLog
from voxline.processors.grounding import GroundingGuard
from voxline.processors.realtime import RealtimeOpening, RealtimeSpeech, opening_instruction
from voxline.processors.speech_text import apply_stt_hints, use_speakable
from voxline.spec import AgentSpec

END_CALL_SCHEMA = FunctionSchema(
    name="end_call",
    description="End the phone call, after the caller has said goodbye or asked to hang up.",
    properties={"goodbye": {"type": "string", "description": "A short goodbye sentence."}},
    required=[],
)


@dataclass
class Services:
    """The STT, LLM and TTS services of a call. Tests and benchmarks pass their own.

    From a spec, a stage given as a list of blocks is a failover chain (one processor
    that tries its providers in order; see integrations/providers/failover)."""

    stt: FrameProcessor | None  # None with ``engine: realtime``
    llm: Any  # an LLMService, a chain of them (same function-registration API), or a realtime model
    tts: FrameProcessor | None

    @classmethod
    def from_spec(cls, spec: AgentSpec, *, sample_rate: int | None = None) -> Services:
        """Light per-call services over the process's loaded models. ``sample_rate``: the
        rate of the call's input audio (8000 on a phone line); None takes the pipeline's."""
        if spec.engine == "realtime":
            return cls(stt=None, tts=None, llm=build_realtime(
                spec.realtime, max_tool_calls_per_turn=spec.limits.max_tool_calls_per_turn,
                language=spec.language))
        return cls(
            stt=build_chain("stt", spec.chain("stt"), language=spec.language, sample_rate=sample_rate),
            llm=build_chain("llm", spec.chain("llm"),
                            max_tool_calls_per_turn=spec.limits.max_tool_calls_per_turn),
            tts=build_chain("tts", spec.chain("tts")),
        )


@dataclass
class Extensions:
    """Integrators' own processors, inserted at named points of the pipeline."""

    before_stt: list[FrameProcessor] = field(default_factory=list)
    before_llm: list[FrameProcessor] = field(default_factory=list)
    after_llm: list[FrameProcessor] = field(default_factory=list)
    before_tts: list[FrameProcessor] = field(default_factory=list)
    # Transports that learn what was played (phone marks) sit around the output.
    before_output: list[FrameProcessor] = field(default_factory=list)
    after_output: list[FrameProcessor] = field(default_factory=list)


def turn_strategies(spec: AgentSpec) -> UserTurnStrategies:
    if spec.turn.strategy == "silence":
        stop = [SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=spec.turn.stop_secs)]
    else:
        from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy

        from voxline.integrations.providers.local.smart_turn import SharedSmartTurnAnalyzerV3

        stop = [TurnAnalyzerUserTurnStopStrategy(turn_analyzer=SharedSmartTurnAnalyzerV3())]  # one model per process
    start = [
        VADUserTurnStartStrategy(enable_interruptions=spec.turn.allow_interruptions),
        # Keypad digits arrive as transcriptions without speech: they must start a turn too.
        TranscriptionUserTurnStartStrategy(),
    ]
    return UserTurnStrategies(start=start, stop=stop)


def vad_analyzer(spec: AgentSpec) -> SharedSileroVADAnalyzer:
    v = spec.vad
    return SharedSileroVADAnalyzer(params=VADParams(
        confidence=v.confidence, start_secs=v.start_secs, stop_secs=v.stop_secs,
        min_volume=v.min_volume,
    ))


def tools_schema(spec: AgentSpec, tools: list[Any]) -> ToolsSchema | NotGiven:
    schemas = [t.function_schema() for t in tools]
    if any(t.handler == "builtin:end_call" for t in spec.tools):
        schemas.append(END_CALL_SCHEMA)
    return ToolsSchema(standard_tools=schemas) if schemas else NOT_GIVEN


def register_tools(spec: AgentSpec, llm: Any, log: CallLog) -> Any:
    """Register the spec's tools on ``llm``; return the ToolsSchema to advertise."""
    tools = load_tools(spec)
    for tool in tools:
        config = config_for(tool.spec, spec.tool_settings)
        llm.register_function(tool.name, make_handler(tool, log, config), cancel_on_interruption=True)
    if any(t.handler == "builtin:end_call" for t in spec.tools):
        llm.register_function("end_call", make_end_call_handler(log, spec.idle.goodbye))
    llm.register_function(None, make_unknown_handler(log))
    return tools_schema(spec, tools)


def example_messages(spec: AgentSpec) -> list[dict[str, Any]]:
    """The spec's examples as earlier exchanges in OpenAI message form."""
    messages: list[dict[str, Any]] = []
    for i, example in enumerate(spec.examples):
        messages.append({"role": "user", "content": example.caller})
        for name, arguments in (example.call or {}).items():
            call_id = f"example_{i}"
            messages.append({"role": "assistant", "content": None, "tool_calls": [{
                "id": call_id, "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)}}]})
            messages.append({"role": "tool", "tool_call_id": call_id,
                             "content": json.dumps(example.result)})
        if example.say:
            messages.append({"role": "assistant", "content": example.say})
    return messages


def preamble_messages(system: str, spec: AgentSpec, extra_context: Iterable[str], llm: Any) -> list[dict[str, Any]]:
    """The system prompt and examples before the call's first turn, with this call's own
    context (caller memory, a task) in the system prompt; or, for an LLM that keeps
    evaluated prefixes (the local model), after the examples, so every call of the agent
    shares the prefix and only this call's context is evaluated for it."""
    extra = [e for e in extra_context if e]
    if extra and getattr(llm, "keeps_prefixes", False):
        return [{"role": "system", "content": system}, *example_messages(spec),
                {"role": "system", "content": "\n\n".join(extra)}]
    return [{"role": "system", "content": "\n\n".join([system, *extra])}, *example_messages(spec)]


def build_pipeline(
    spec: AgentSpec,
    transport: BaseTransport,
    services: Services,
    log: CallLog,
    *,
    extensions: Extensions | None = None,
    extra_context: list[str] = (),  # type: ignore[assignment]
) -> tuple[Pipeline, LLMContextAggregatorPair]:
    ext = extensions or Extensions()
    context = LLMContext(messages=preamble_messages(spec.system_prompt, spec, extra_context, services.llm),
                         tools=register_tools(spec, services.llm, log))
    aggregators = LLMContextAggregatorPair(
        context,
        user_params=LLMUserAggregatorParams(
            vad_analyzer=vad_analyzer(spec),
            user_turn_strategies=turn_strategies(spec),
            user_idle_timeout=spec.idle.reprompt_after_secs,
        ),
    )
    if spec.engine == "realtime":
        log.realtime = True  # meter the audio to and from the model
        # One speech-to-speech model: the caller's audio goes in, the agent's comes out;
        # voxline's VAD and turn strategy decide the turns (see providers/openai.py).
        context.add_message({"role": "system", "content": opening_instruction(spec.greeting)})
        return Pipeline([
            transport.input(), RealtimeOpening(), *ext.before_stt, *ext.before_llm, aggregators.user(),
            RealtimeSpeech(), services.llm,
            *ext.after_llm, *ext.before_output, transport.output(), *ext.after_output,
            aggregators.assistant(),
        ]), aggregators
    apply_stt_hints(spec, services.stt)
    use_speakable(services.tts)  # times, money, numbers in words; the context keeps the text
    grounding = (
        [GroundingGuard(spec, log, extra_context=extra_context)] if spec.guardrails.grounding else []
    )
    pipeline = Pipeline([
        transport.input(),
        *ext.before_stt,
        services.stt,
        *ext.before_llm,
        aggregators.user(),
        services.llm,
        AnswerGuard(spec.fallback),
        *grounding,  # no claim of an action no tool performed, no example stated as fact
        *ext.after_llm,
        *ext.before_tts,
        services.tts,
        *ext.before_output,
        transport.output(),
        *ext.after_output,
        aggregators.assistant(),
    ])
    return pipeline, aggregators
