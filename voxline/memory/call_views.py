"""What `voxline calls list` and `voxline calls show ID` print: calls as people read them.

A call shows what the caller said and what they heard of the agent (an interrupted
answer only as far as it was played), its tool calls, latencies, the providers that
served each turn and what it cost.
"""

from __future__ import annotations

from typing import Any

from voxline.memory.cli_commands import _with_store
from voxline.memory.records import CallRecord
from voxline.memory.store import Store


def _summary(c: CallRecord) -> dict[str, Any]:
    duration = (c.ended_at - c.started_at).total_seconds() if c.ended_at else None
    return {
        "id": c.id, "agent": c.agent, "channel": c.channel, "direction": c.direction,
        "status": c.status, "end_reason": c.end_reason, "started_at": c.started_at.isoformat(),
        "duration_secs": round(duration, 1) if duration is not None else None,
        "cost_usd": c.cost_usd,
    }


def calls_list(database_url: str | None, tenant: str, *, agent: str | None = None,
               status: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    async def work(store: Store) -> list[dict[str, Any]]:
        rows = await store.list_calls(tenant, agent=agent, status=status, limit=limit)
        return [_summary(c) for c in rows]

    return _with_store(database_url, work)


def calls_show(database_url: str | None, tenant: str, call_id: str) -> dict[str, Any] | None:
    async def work(store: Store) -> dict[str, Any] | None:
        c = await store.get_call(tenant, call_id)
        if c is None:
            return None
        tools_by_turn: dict[int, list[dict[str, Any]]] = {}
        for t in c.tool_calls:
            tools_by_turn.setdefault(t.turn_index, []).append(
                {"name": t.name, "arguments": t.arguments, "result": t.result,
                 "error": t.error, "duration_ms": t.duration_ms})
        turns = []
        for t in c.turns:
            turn: dict[str, Any] = {"role": t.role, "text": t.text}
            if t.language:
                turn["language"] = t.language
            if t.role == "assistant":
                turn.update(agent=t.agent or c.agent, heard=t.heard, interrupted=t.interrupted, latency_ms=t.latency_ms,
                            providers=t.providers, usage=t.usage, cost_usd=t.cost_usd,
                            tool_calls=tools_by_turn.get(t.index, []))
            turns.append(turn)
        return {**_summary(c), "from": c.from_, "to": c.to, "answered_by": c.answered_by,
                "transfer_to": c.transfer_to, "usage": c.usage, "latency": c.latency_stats,
                "model_versions": c.model_versions, "turns": turns}

    return _with_store(database_url, work)


def _served(stage: str, p: dict[str, Any]) -> str:
    """``llm=anthropic/claude-haiku-4-5 (after openai: http 503)``: who served a stage,
    and who failed it over to them."""
    text = f"{stage}={p.get('provider')}/{p.get('model')}"
    failed = p.get("failed_over_from") or []
    return f"{text} (after {'; '.join(failed)})" if failed else text


def render(call: dict[str, Any]) -> str:
    """A call as text: header, then one line per turn (heard text for the agent)."""
    lines = [f"call {call['id']}  agent {call['agent']}  {call['channel']} {call['direction']}  "
             f"{call['status']} ({call['end_reason']})  {call['duration_secs']} s  "
             f"cost ${call['cost_usd'] or 0:.4f}"]
    # A call in one language says nothing of it; one that switched tags every turn.
    tagged = len({t["language"] for t in call["turns"] if t.get("language")}) > 1
    for t in call["turns"]:
        lang = f" [{t['language']}]" if tagged and t.get("language") else ""
        if t["role"] == "user":
            lines.append(f"  caller{lang}: {t['text']}")
            continue
        mark = " [interrupted]" if t.get("interrupted") else ""
        served = ", ".join(_served(k, v) for k, v in (t.get("providers") or {}).items())
        lat = t.get("latency_ms") or {}
        who = f" ({t['agent']})" if t.get("agent") and t.get("agent") != call["agent"] else ""
        lines.append(f"  agent{who}{lang}:  {t.get('heard') or t['text']}{mark}")
        for tool in t.get("tool_calls") or []:
            lines.append(f"          tool {tool['name']}({tool['arguments']}) -> {tool['error'] or tool['result']}")
        details = [f"{k} {v:.0f} ms" for k, v in lat.items()]
        if served:
            details.append(served)
        if t.get("cost_usd"):
            details.append(f"${t['cost_usd']:.4f}")
        if details:
            lines.append("          " + "; ".join(details))
    return "\n".join(lines)
