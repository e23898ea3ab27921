"""Plain records the store hands out (dataclasses, detached from the ORM session)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from voxline.errors import VoxlineError


class StoreError(VoxlineError):
    """A database operation failed; `retryable` says whether trying again may help."""


class TenantMismatch(StoreError):
    """An id exists but belongs to another tenant. Never retryable."""


CALLER_KINDS = ("phone", "web", "external")
_E164 = re.compile(r"^\+?[0-9][0-9 ()\-.]{5,}$")


@dataclass(frozen=True)
class CallerKey:
    """`phone:+15551234567`, `web:user-42`, `external:crm-9`; a bare number means phone."""

    kind: str
    value: str

    @classmethod
    def parse(cls, key: str | CallerKey) -> CallerKey:
        if isinstance(key, CallerKey):
            return key
        kind, sep, value = key.partition(":")
        if sep and kind in CALLER_KINDS and value:
            return cls(kind, value.strip())
        if sep and kind == "ext" and value:
            return cls("external", value.strip())
        if _E164.match(key.strip()):
            digits = re.sub(r"[^0-9+]", "", key)
            return cls("phone", digits if digits.startswith("+") else "+" + digits)
        return cls("external", key.strip())

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"

    def fingerprint(self) -> str:
        """A stable, non-reversible id for logs and audit rows."""
        return hashlib.sha256(str(self).encode()).hexdigest()[:16]


@dataclass
class TurnRecord:
    index: int
    role: str
    text: str
    heard: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    interrupted: bool = False
    latency_ms: dict[str, float] = field(default_factory=dict)
    usage: dict[str, float] = field(default_factory=dict)
    providers: dict[str, Any] = field(default_factory=dict)
    cost_usd: float | None = None
    agent: str | None = None  # the agent that answered (multi-agent calls)
    language: str | None = None  # the language it was spoken in


@dataclass
class ToolCallRecord:
    id: str
    turn_index: int
    name: str
    arguments: Any
    result: Any
    duration_ms: float | None
    error: str | None


@dataclass
class CallRecord:
    id: str
    tenant: str
    caller_id: str | None
    channel: str
    direction: str
    from_: str | None
    to: str | None
    agent: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    end_reason: str | None
    model_versions: dict[str, Any]
    cost_usd: float | None
    latency_stats: dict[str, Any] | None
    owner: str | None = None
    answered_by: str | None = None
    transfer_to: str | None = None
    transport_stats: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    turns: list[TurnRecord] = field(default_factory=list)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)


@dataclass
class MemoryRecord:
    id: int
    kind: str
    text: str
    importance: float
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None
    source_call_id: str | None
    similarity: float | None = None


@dataclass
class SummaryRecord:
    call_id: str
    text: str
    created_at: datetime
    similarity: float | None = None
