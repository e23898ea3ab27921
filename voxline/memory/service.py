"""MemoryService: recall at call start (under a latency budget) and remember at call end."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from voxline.memory.embeddings import Embedder
from voxline.memory.extract import Line, Summarizer, summarize_and_extract
from voxline.memory.policy import RetrievalProfile, WritePolicy
from voxline.memory.records import CallerKey, MemoryRecord, StoreError
from voxline.memory.store import Store
from voxline.memory.types import utcnow

log = logging.getLogger("voxline.memory")


@dataclass(frozen=True)
class Recalled:
    source: str  # memory | summary
    kind: str
    text: str
    score: float
    memory_id: int | None = None

    def __str__(self) -> str:
        return self.text


@dataclass
class RecallStats:
    recalls: int = 0
    skipped_over_budget: int = 0
    errors: int = 0
    last_ms: float = 0.0


@dataclass
class RememberResult:
    summary: str
    inserted: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (kind, reason), no text


class MemoryService:
    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        *,
        profile: RetrievalProfile | None = None,
        policy: WritePolicy | None = None,
        actor: str = "agent",
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.profile = profile or RetrievalProfile()
        self.policy = policy or WritePolicy()
        self.actor = actor
        self.stats = RecallStats()

    # -- recall -----------------------------------------------------------------------
    async def recall(
        self,
        tenant: str,
        caller_key: str | CallerKey,
        query: str | None = None,
        budget_ms: float | None = None,
    ) -> list[Recalled]:
        """Most relevant memories + latest summaries; [] (and counted) if over budget."""
        budget = (budget_ms or self.profile.budget_ms) / 1000
        t0 = time.perf_counter()
        self.stats.recalls += 1
        try:
            return await asyncio.wait_for(self._recall(tenant, caller_key, query), budget)
        except TimeoutError:
            self.stats.skipped_over_budget += 1
            log.warning(
                "recall for caller %s skipped: over %.0f ms budget",
                CallerKey.parse(caller_key).fingerprint(),
                budget * 1000,
            )
            return []
        except StoreError as e:
            self.stats.errors += 1
            log.warning("recall failed (%s); answering without memory", e)
            return []
        finally:
            self.stats.last_ms = (time.perf_counter() - t0) * 1000

    async def _recall(
        self, tenant: str, caller_key: str | CallerKey, query: str | None
    ) -> list[Recalled]:
        cid = await self.store.caller_id(tenant, caller_key)
        if cid is None:
            return []
        qvec = (await self.embedder.embed([query]))[0] if query else None
        p, now = self.profile, utcnow()
        mems = await self.store.caller_memories(tenant, cid, query=qvec, limit=max(p.top_k * 4, 20))
        scored = sorted(
            (
                (
                    p.score(
                        similarity=m.similarity,
                        last=m.last_used_at or m.updated_at,
                        importance=m.importance,
                        now=now,
                    ),
                    m,
                )
                for m in mems
            ),
            key=lambda t: -t[0],
        )
        out = [
            Recalled("memory", m.kind, m.text, s, m.id)
            for s, m in scored[: p.top_k]
            if s >= p.min_score
        ]
        if p.summaries:
            for s in await self.store.recent_summaries(tenant, cid, limit=p.summaries):
                out.append(Recalled("summary", "summary", s.text, 0.0))
        await self.store.touch_memories(
            tenant, [r.memory_id for r in out if r.memory_id], self.actor
        )
        return out

    @staticmethod
    def format_context(items: Sequence[Recalled]) -> str:
        """A system-message block for the LLM context ('' when nothing is known)."""
        if not items:
            return ""
        facts = [f"- {r.text}" for r in items if r.source == "memory"]
        calls = [f"- {r.text}" for r in items if r.source == "summary"]
        # Small local models follow a direct instruction better than a bare list.
        parts = ["What you remember about this caller from earlier calls:"]
        if facts:
            parts += facts
        if calls:
            parts += ["Summaries of their latest calls:", *calls]
        parts.append(
            "This is a returning caller: if you know their name, greet them by it in your "
            "first answer, and use what you remember when it helps."
        )
        return "\n".join(parts)

    # -- remember ---------------------------------------------------------------------
    async def remember_call(
        self,
        tenant: str,
        call_id: str,
        transcript: Sequence[Line] | None = None,
        summarize: Summarizer | None = None,
    ) -> RememberResult:
        """Summary + embedding; facts filtered by the write policy and merged with old ones."""
        caller_id = await self.store.call_owner(tenant, call_id)  # raises on another tenant's call
        if transcript is None:
            call = await self.store.get_call(tenant, call_id)
            transcript = [
                Line(t.role, t.heard or t.text) if t.role == "assistant" else Line(t.role, t.text)
                for t in (call.turns if call else [])
            ]
        summary, facts = await summarize_and_extract(transcript, summarize, call_id)
        result = RememberResult(summary=summary)
        kept = []
        for f in facts:
            reason = self.policy.rejects(f.kind, f.text)
            if reason:
                result.rejected.append((f.kind, reason))
            else:
                kept.append(f)
        kept = kept[: self.policy.max_facts_per_call]
        vecs = await self.embedder.embed([summary] + [f.text for f in kept])
        await self.store.save_summary(tenant, call_id, caller_id, summary, vecs[0])
        if caller_id is None or not self.policy.enabled:
            return result
        existing = await self.store.caller_memories(tenant, caller_id, limit=1000)
        ex_vecs = await self.embedder.embed([m.text for m in existing]) if existing else None
        for f, v in zip(kept, vecs[1:], strict=True):
            match = _near_duplicate(v, existing, ex_vecs, f.kind, self.policy.merge_threshold)
            if match is not None:
                imp = max(match.importance, f.importance)
                await self.store.update_memory(
                    tenant,
                    match.id,
                    text=f.text,
                    embedding=v,
                    importance=imp,
                    source_call_id=call_id,
                )
                result.updated.append(match.id)
            else:
                mid = await self.store.insert_memory(
                    tenant,
                    caller_id,
                    kind=f.kind,
                    text=f.text,
                    embedding=v,
                    importance=f.importance,
                    source_call_id=call_id,
                )
                result.inserted.append(mid)
                existing.append(
                    MemoryRecord(
                        mid, f.kind, f.text, f.importance, utcnow(), utcnow(), None, call_id
                    )
                )
                ex_vecs = v[None, :] if ex_vecs is None else np.vstack([ex_vecs, v])
        log.info(
            "%s remembered: %d new, %d merged, %d rejected",
            call_id,
            len(result.inserted),
            len(result.updated),
            len(result.rejected),
        )
        return result

    async def list_memories(
        self, tenant: str, caller_key: str | CallerKey, *, actor: str = "admin"
    ) -> list[MemoryRecord]:
        return await self.store.list_memories(tenant, caller_key, actor=actor)

    async def forget(
        self, tenant: str, caller_key: str | CallerKey, *, actor: str = "admin"
    ) -> dict[str, int]:
        return await self.store.forget(tenant, caller_key, actor=actor)


def _near_duplicate(
    v: np.ndarray,
    existing: list[MemoryRecord],
    ex_vecs: np.ndarray | None,
    kind: str,
    threshold: float,
) -> MemoryRecord | None:
    """The most similar existing fact of the same kind (names: any name) above threshold."""
    if ex_vecs is None or not existing:
        return None
    sims = ex_vecs @ v
    best, best_sim = None, threshold
    for m, s in zip(existing, sims, strict=True):
        # A caller has one name: a new name replaces the old one whatever the similarity.
        same_slot = m.kind == kind == "name"
        if m.kind == kind and (same_slot or s >= best_sim):
            best, best_sim = m, (1.0 if same_slot else float(s))
    return best
