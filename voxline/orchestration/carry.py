"""What of the conversation an agent taking over a call is given: all of it, or a summary."""

from __future__ import annotations

from typing import Any

SUMMARY_CHARS = 700


def _is_handoff_call(call: dict[str, Any]) -> bool:
    return str(call.get("function", {}).get("name", "")).startswith("transfer_to_")


def carry_full(conversation: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation without the handoff choice itself (the incoming agent has no such
    tool, and must answer the caller, not the choice) and without the greeting."""
    dropped: set[str] = set()
    out: list[dict[str, Any]] = []
    first_user = next((i for i, m in enumerate(conversation) if m.get("role") == "user"), len(conversation))
    # The outgoing agent's greeting is not the conversation: a small model repeats it.
    conversation = [m for i, m in enumerate(conversation) if i >= first_user or m.get("role") != "assistant"]
    for m in conversation:
        calls = m.get("tool_calls") or []
        if m.get("role") == "assistant" and calls:
            kept = [c for c in calls if not _is_handoff_call(c)]
            dropped |= {c.get("id", "") for c in calls if _is_handoff_call(c)}
            if kept:
                out.append({**m, "tool_calls": kept})
            elif m.get("content"):
                out.append({"role": "assistant", "content": m["content"]})
            continue
        if m.get("role") == "tool" and m.get("tool_call_id") in dropped:
            continue
        out.append(m)
    return out


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def carry_summary(conversation: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    """A short summary built from the record (no LLM pass in the caller's turn): what the
    caller said before and what the tools found, then the caller's last words verbatim."""
    messages = carry_full(conversation)
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
    earlier = [_text(m.get("content")) for m in messages[:last_user] if m.get("role") == "user"]
    names = {c.get("id"): c.get("function", {}).get("name") for m in messages for c in m.get("tool_calls") or []}
    found = [f"{names.get(m.get('tool_call_id'), 'a tool')} gave {_text(m.get('content'))}"
             for m in messages[:last_user] if m.get("role") == "tool"]
    parts = [f"The {source} agent passed this caller to you."]
    if earlier:
        parts.append("Before, the caller said: " + " / ".join(earlier))
    if found:
        parts.append("Done so far: " + "; ".join(found))
    summary = " ".join(parts)
    if len(summary) > SUMMARY_CHARS:
        summary = summary[: SUMMARY_CHARS - 3] + "..."
    tail = [messages[last_user]] if last_user is not None else []
    return [{"role": "user", "content": f"(Summary of the call so far: {summary})"}, *tail]
