"""Per-agent memory settings: the ``memory:`` block of an agent spec.

    memory:
      tenant: acme
      redact_transcripts: true
      write_policy: {deny_kinds: [contact], deny_patterns: ["\\bpassword\\b"]}
      retrieval: {top_k: 5, summaries: 2, half_life_days: 30, budget_ms: 200}

Light on purpose (pydantic only): voxline.spec imports it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from voxline.memory.policy import RetrievalProfile, WritePolicy

REDACT_KINDS = ("card", "email", "ssn", "iban", "phone")


class MemorySettings(BaseModel):
    """What an agent records, recalls and remembers about its callers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True  # False: no call record, no recall, no summary
    tenant: str = Field("default", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    recall: bool = True  # inject memories + last summaries into the prompt at call start
    remember: bool = True  # at call end: summary + durable facts under write_policy
    redact_transcripts: bool = False  # store turns and tool calls with PII replaced
    redact_kinds: tuple[str, ...] = REDACT_KINDS
    write_policy: WritePolicy = Field(default_factory=WritePolicy)
    retrieval: RetrievalProfile = Field(default_factory=RetrievalProfile)

    @property
    def redacts(self) -> bool:
        return self.redact_transcripts or self.write_policy.redact_transcripts
