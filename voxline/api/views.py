"""Calls, memories and keys as the API and the dashboard show them (JSON-able dicts).

A call has the shape of ``voxline calls show --json`` (:mod:`voxline.memory.call_views`):
what the caller said, what they heard of the agent, tool calls, latencies, the providers
of each turn, usage and cost; plus the agent version it ran and its recording's URL.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from voxline.memory.call_views import _summary
from voxline.memory.records import CallRecord, MemoryRecord


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def call_summary(c: CallRecord) -> dict[str, Any]:
    return {**_summary(c), "ended_at": c.ended_at.isoformat() if c.ended_at else None}


def call_detail(c: CallRecord) -> dict[str, Any]:
    """The same shape as ``voxline calls show --json``."""
    tools_by_turn: dict[int, list[dict[str, Any]]] = {}
    for t in c.tool_calls:
        tools_by_turn.setdefault(t.turn_index, []).append(
            {"name": t.name, "arguments": t.arguments, "result": t.result, "error": t.error,
             "duration_ms": t.duration_ms})
    turns = []
    for t in c.turns:
        turn: dict[str, Any] = {"role": t.role, "text": t.text}
        if t.role == "assistant":
            turn.update(heard=t.heard, interrupted=t.interrupted, latency_ms=t.latency_ms, providers=t.providers,
                        usage=t.usage, cost_usd=t.cost_usd, tool_calls=tools_by_turn.get(t.index, []))
        turns.append(turn)
    return {**call_summary(c), "from": c.from_, "to": c.to, "answered_by": c.answered_by,
            "transfer_to": c.transfer_to, "usage": c.usage, "latency": c.latency_stats,
            "model_versions": c.model_versions, "turns": turns}


def recording_path(recording_dir: Path, call_id: str) -> Path | None:
    """The call's two-channel WAV (see voxline.processors.recording), if one was made."""
    if not call_id or "/" in call_id or "\\" in call_id or call_id.startswith("."):
        return None
    path = Path(recording_dir) / f"{call_id}.wav"
    return path if path.is_file() else None


def memory_view(m: MemoryRecord) -> dict[str, Any]:
    return {"id": m.id, "kind": m.kind, "text": m.text, "importance": round(m.importance, 3),
            "created_at": m.created_at.isoformat(), "updated_at": m.updated_at.isoformat(),
            "last_used_at": m.last_used_at.isoformat() if m.last_used_at else None,
            "source_call_id": m.source_call_id}
