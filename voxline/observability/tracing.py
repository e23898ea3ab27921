"""OpenTelemetry traces: call → turn → stt / llm / tts / tool spans, over OTLP.

On when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (OTLP over HTTP/protobuf; the usual
``OTEL_*`` variables apply), or when a test hands in its own exporter. A call is one
trace: the call span lasts the call; each turn is a child span laid out from what the
call log measured for it (speech end → transcript, context → first token, first text →
first audio, each tool call's duration), with the providers and models that served it.

Span attributes never carry what was said (transcripts, prompts, tool arguments) —
only their lengths — unless ``VOXLINE_TRACE_CONTENT=1``. Caller numbers are never in
spans.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from voxline.observability.host_events import BaseListener, CallInfo
from voxline.processors.call_log import TurnRecord

log = logging.getLogger("voxline.observability")

ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
CONTENT_ENV = "VOXLINE_TRACE_CONTENT"
SERVICE_NAME = "voxline"


def _ns(secs: float) -> int:
    return int(secs * 1e9)


def tracer_provider(exporter: Any = None, *, batch: bool | None = None) -> Any | None:
    """A TracerProvider exporting to ``exporter`` or to OTLP at $OTEL_EXPORTER_OTLP_ENDPOINT;
    None when neither is there (tracing off)."""
    if exporter is None and not os.environ.get(ENDPOINT_ENV):
        return None
    from voxline.extras import require

    require("opentelemetry.sdk.trace", "platform")
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    if exporter is None:
        require("opentelemetry.exporter.otlp.proto.http.trace_exporter", "platform")
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
        batch = True if batch is None else batch
    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get(
        "OTEL_SERVICE_NAME", SERVICE_NAME)}))
    provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    return provider


class TracingListener(BaseListener):
    def __init__(self, provider: Any, *, content: bool | None = None) -> None:
        from opentelemetry import trace

        self.provider = provider
        self.tracer = provider.get_tracer("voxline")
        self._trace = trace
        self.content = (os.environ.get(CONTENT_ENV, "") in ("1", "true", "yes")) if content is None else content
        self._spans: dict[str, Any] = {}

    def _text(self, attrs: dict[str, Any], key: str, text: str) -> None:
        attrs[f"{key}.chars"] = len(text or "")
        if self.content:
            attrs[key] = text or ""

    def call_started(self, call: CallInfo) -> None:
        span = self.tracer.start_span("call", start_time=_ns(call.started), attributes={
            "voxline.call_id": call.call_id, "voxline.tenant": call.tenant, "voxline.agent": call.agent,
            "voxline.channel": call.channel, "voxline.direction": call.direction,
            "voxline.memory.recall_ms": call.recall_ms, "voxline.memory.recall_skipped": call.recall_skipped,
        })
        self._spans[call.call_id] = span

    def turn_closed(self, call: CallInfo, turn: TurnRecord) -> None:
        parent = self._spans.get(call.call_id)
        if parent is None:
            return
        ctx = self._trace.set_span_in_context(parent)
        lat = {k: float(v) / 1000.0 for k, v in (turn.latency_ms or {}).items()}
        t0 = turn.started_at  # the caller's turn ended (or the agent spoke first)
        stt, llm, tts = lat.get("stt", 0.0), lat.get("llm_ttft"), lat.get("tts_ttfb")
        end = turn.ended_at or t0
        attrs: dict[str, Any] = {"voxline.turn.index": turn.index, "voxline.turn.interrupted": turn.interrupted}
        for key, value in (turn.latency_ms or {}).items():
            attrs[f"voxline.latency_ms.{key}"] = float(value)
        self._text(attrs, "voxline.turn.user_text", turn.user_text)
        self._text(attrs, "voxline.turn.agent_text", turn.agent_text)
        span = self.tracer.start_span("turn", context=ctx, start_time=_ns(t0 - stt), attributes=attrs)
        turn_ctx = self._trace.set_span_in_context(span)
        providers = turn.providers or {}

        def child(name: str, start: float, secs: float, extra: dict[str, Any] | None = None) -> None:
            served = providers.get(name) or {}
            a = {"voxline.provider": str(served.get("provider") or ""), "voxline.model": str(served.get("model") or "")}
            a.update(extra or {})
            s = self.tracer.start_span(name, context=turn_ctx, start_time=_ns(start), attributes=a)
            s.end(end_time=_ns(start + secs))

        if "stt" in lat:
            child("stt", t0 - stt, stt, {"voxline.usage.stt_audio_secs": float(turn.usage.get("stt_audio_secs", 0))})
        if llm is not None:
            child("llm", t0, llm, {"voxline.usage.input_tokens": float(turn.usage.get("llm_input_tokens", 0)),
                                   "voxline.usage.output_tokens": float(turn.usage.get("llm_output_tokens", 0))})
        if tts is not None:
            child("tts", t0 + (llm or 0.0), tts, {"voxline.usage.tts_characters":
                                                  float(turn.usage.get("tts_characters", 0))})
        for tool in turn.tool_calls:
            extra: dict[str, Any] = {"voxline.tool.name": tool.name, "voxline.tool.error": bool(tool.error)}
            if self.content:
                extra["voxline.tool.arguments"] = str(tool.arguments)[:2000]
            s = self.tracer.start_span(f"tool {tool.name}", context=turn_ctx, start_time=_ns(t0 + (llm or 0.0)),
                                       attributes=extra)
            s.end(end_time=_ns(t0 + (llm or 0.0) + float(tool.duration_ms or 0.0) / 1000.0))
        span.end(end_time=_ns(max(end, t0)))

    def handoff_requested(self, call: CallInfo, target: str) -> None:
        span = self._spans.get(call.call_id)
        if span is not None:
            span.add_event("handoff.requested", {"voxline.handoff.target_label": target if self.content else "set"})

    def call_ended(self, call: CallInfo, reason: str, result: Any) -> None:
        span = self._spans.pop(call.call_id, None)
        if span is not None:
            span.set_attribute("voxline.outcome", reason)
            span.end()

    def shutdown(self) -> None:
        for span in self._spans.values():
            span.end()
        self._spans.clear()
        try:
            self.provider.shutdown()
        except Exception as e:  # an unreachable collector must not stop the server from exiting
            log.warning("- tracing shutdown: %s", type(e).__name__)
