"""What an agent may remember (write policy) and how it ranks what it recalls (profile)."""

from __future__ import annotations

import math
import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from voxline.memory.redact import find_cards, mentions_health

DEFAULT_KINDS = ("name", "preference", "problem", "commitment", "booking", "contact", "fact")


class WritePolicy(BaseModel):
    """Per-agent rules for durable facts. A fact is stored only if every rule allows it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    allow_kinds: tuple[str, ...] = DEFAULT_KINDS
    deny_kinds: tuple[str, ...] = ()
    deny_patterns: tuple[str, ...] = ()  # extra regexes, case-insensitive
    deny_card_numbers: bool = True
    deny_health: bool = True
    redact_transcripts: bool = False  # store turns with PII replaced
    max_facts_per_call: int = Field(default=10, ge=0)
    merge_threshold: float = Field(default=0.80, ge=0, le=1)  # cosine: update instead of insert

    def rejects(self, kind: str, text: str) -> str | None:
        """The reason a fact must not be stored, or None if it may be."""
        if not self.enabled:
            return "memory disabled"
        if kind not in self.allow_kinds or kind in self.deny_kinds:
            return f"kind {kind!r} not allowed"
        if self.deny_card_numbers and find_cards(text):
            return "card number"
        if self.deny_health and mentions_health(text):
            return "health detail"
        for p in self.deny_patterns:
            if re.search(p, text, re.IGNORECASE):
                return "denied pattern"
        return None


class RetrievalProfile(BaseModel):
    """score = similarity^w_sim × recency^w_rec × importance^w_imp.

    A weight of 0 switches its factor off; recency halves every `half_life_days`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    w_similarity: float = Field(default=1.0, ge=0)
    w_recency: float = Field(default=0.5, ge=0)
    w_importance: float = Field(default=0.5, ge=0)
    half_life_days: float = Field(default=30.0, gt=0)
    top_k: int = Field(default=5, ge=0)
    summaries: int = Field(default=2, ge=0)  # latest call summaries to add
    min_score: float = Field(default=0.0, ge=0)
    budget_ms: float = Field(default=200.0, gt=0)

    def score(
        self, *, similarity: float | None, last: datetime, importance: float, now: datetime
    ) -> float:
        sim = 1.0 if similarity is None else max(0.01, min(1.0, similarity))
        age_days = max(0.0, (now - last).total_seconds() / 86400)
        recency = math.pow(0.5, age_days / self.half_life_days)
        imp = max(1e-3, min(1.0, importance))
        return (sim**self.w_similarity) * (recency**self.w_recency) * (imp**self.w_importance)
