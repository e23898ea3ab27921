"""Prometheus metrics: ``GET /metrics``.

Labels are ``tenant`` and ``agent`` (plus a bounded ``stage``, ``outcome`` or ``tool``),
never a call or a caller: a label per call would grow without bound.

Several workers in one pod (``voxline serve --workers N``) share one port, so a scrape
reaches one of them at random. With ``PROMETHEUS_MULTIPROC_DIR`` set (before the
workers start) prometheus_client's multiprocess mode is used: each worker writes its
samples to memory-mapped files in that folder, and ``/metrics`` in any worker sums
them. That costs the call path a few memory writes per event and no network round
trip (a Redis-aggregated counter would cost one per event), and it is the mode
Prometheus' own client documents for pre-forked servers. Across pods, Prometheus
scrapes every pod, as usual.
"""

from __future__ import annotations

import os
from typing import Any

from voxline.observability.host_events import BaseListener, CallInfo
from voxline.processors.call_log import TurnRecord

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
STAGES = ("stt", "llm_ttft", "tts_ttfb", "voice_to_voice")
_LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
_TOOL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self, registry: Any = None) -> None:
        from prometheus_client import REGISTRY, Counter, Gauge, Histogram

        from voxline.extras import require

        require("prometheus_client", "platform")
        reg = registry if registry is not None else REGISTRY
        ta = ["tenant", "agent"]
        self.registry = reg
        self.calls_active = Gauge("voxline_calls_active", "Calls in progress", ta, registry=reg,
                                  multiprocess_mode="livesum")
        self.calls_total = Counter("voxline_calls_total", "Calls ended, by outcome (end reason)",
                                   [*ta, "outcome"], registry=reg)
        self.calls_refused = Counter("voxline_calls_refused_total", "Calls refused (busy, draining)",
                                     [*ta, "reason"], registry=reg)
        self.turn_latency = Histogram("voxline_turn_latency_seconds",
                                      "Turn latency per stage: stt, llm_ttft, tts_ttfb, voice_to_voice",
                                      [*ta, "stage"], buckets=_LATENCY_BUCKETS, registry=reg)
        self.turns = Counter("voxline_turns_total", "Turns answered", ta, registry=reg)
        self.failovers = Counter("voxline_failovers_total",
                                 "Turns a fallback provider served instead of the primary", [*ta, "stage"],
                                 registry=reg)
        self.tool_calls = Counter("voxline_tool_calls_total", "Tool calls, by outcome (ok, error)",
                                  [*ta, "tool", "outcome"], registry=reg)
        self.tool_errors = Counter("voxline_tool_errors_total", "Tool calls that failed", [*ta, "tool"],
                                   registry=reg)
        self.tool_duration = Histogram("voxline_tool_duration_seconds", "Tool call duration", [*ta, "tool"],
                                       buckets=_TOOL_BUCKETS, registry=reg)
        self.recall_skipped = Counter("voxline_memory_recall_skipped_total",
                                      "Calls whose memory recall was skipped (over its latency budget)", ta,
                                      registry=reg)
        self.cost = Counter("voxline_cost_usd_total", "Provider cost of turns, USD (voxline.pricing)", ta,
                            registry=reg)
        self.usage = Counter("voxline_usage_total", "Usage: audio seconds, tokens, characters",
                             [*ta, "kind"], registry=reg)


_metrics: Metrics | None = None


def metrics() -> Metrics:
    """This process's metrics (created once)."""
    global _metrics
    if _metrics is None:
        _metrics = Metrics()
    return _metrics


def render() -> tuple[bytes, str]:
    """The exposition text: every worker's samples in multiprocess mode, else this process's."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    metrics()
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(metrics().registry), CONTENT_TYPE_LATEST


def mark_worker_gone(pid: int) -> None:
    """Drop a dead worker's live gauges (multiprocess mode); for the process supervisor."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


class MetricsListener(BaseListener):
    def __init__(self, m: Metrics | None = None) -> None:
        self.m = m or metrics()

    def call_started(self, call: CallInfo) -> None:
        self.m.calls_active.labels(call.tenant, call.agent).inc()
        if call.recall_skipped:
            self.m.recall_skipped.labels(call.tenant, call.agent).inc()

    def call_ended(self, call: CallInfo, reason: str, result: Any) -> None:
        self.m.calls_active.labels(call.tenant, call.agent).dec()
        self.m.calls_total.labels(call.tenant, call.agent, reason).inc()

    def call_refused(self, tenant: str, agent: str, reason: str) -> None:
        self.m.calls_refused.labels(tenant, agent, reason).inc()

    def turn_closed(self, call: CallInfo, turn: TurnRecord) -> None:
        t, a = call.tenant, call.agent
        if turn.agent_text or turn.tool_calls:
            self.m.turns.labels(t, a).inc()
        for stage in STAGES:
            value = turn.latency_ms.get(stage)
            if value is not None:
                self.m.turn_latency.labels(t, a, stage).observe(float(value) / 1000.0)
        for tool in turn.tool_calls:
            outcome = "error" if tool.error else "ok"
            self.m.tool_calls.labels(t, a, tool.name, outcome).inc()
            if tool.error:
                self.m.tool_errors.labels(t, a, tool.name).inc()
            self.m.tool_duration.labels(t, a, tool.name).observe(float(tool.duration_ms or 0.0) / 1000.0)
        for stage in ("stt", "llm", "tts"):
            served = (turn.providers or {}).get(stage) or {}
            chain = call.spec.chain(stage)  # type: ignore[arg-type]
            fallbacks = {b.provider for b in chain[1:]} - {chain[0].provider}
            if served.get("provider") in fallbacks:
                self.m.failovers.labels(t, a, stage).inc()
        if turn.usage:
            from voxline.pricing import cost

            usd, _unpriced = cost(turn.usage, turn.providers or {})
            if usd:
                self.m.cost.labels(t, a).inc(usd)
            for kind, amount in turn.usage.items():
                if amount:
                    self.m.usage.labels(t, a, kind).inc(float(amount))
