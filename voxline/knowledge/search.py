"""``builtin:search_knowledge``: the agent's knowledge base, searched under a latency budget.

Embedding the question (~3 ms) and the scoped search run within ``knowledge.budget_ms``;
a search that takes longer is abandoned and the agent says it could not look it up.
Results carry their source, so the answer can cite it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema

from voxline.knowledge.build import collection_of
from voxline.knowledge.store import KnowledgeStore
from voxline.spec import AgentSpec

log = logging.getLogger("voxline.knowledge")

# What the agent is told when nothing matches: a small model otherwise reads "nothing
# found" as "no" ("we have no gluten-free pasta") instead of "I don't know".
NOTHING_FOUND = ("nothing in the documents answers this: tell the caller you don't know that, "
                 "do not guess or say no")
_EMPTY_WARNED: set[tuple[str, str]] = set()  # knowledge bases found empty, warned once a process

SCHEMA = FunctionSchema(
    name="search_knowledge",
    description="Look up the answer to the caller's question in the documents of this business "
                "(opening hours, menu, policies, directions...).",
    properties={"query": {"type": "string", "description": "The caller's question, in a few words."}},
    # Not required: a small local model's own wording of the question is not the caller's
    # (its argument check would ask the caller for "the query"); without one, the caller's
    # last words are the query.
    required=[],
)


class KnowledgeSearch:
    def __init__(self, spec: AgentSpec, store: Any, embedder: Any) -> None:
        assert spec.knowledge is not None
        self.settings = spec.knowledge
        self.tenant, self.collection = spec.memory.tenant, collection_of(spec)
        self.kb = KnowledgeStore(store)
        self.embedder = embedder
        self.last_ms = 0.0

    async def search(self, query: str) -> dict[str, Any]:
        """``{"results": [{"text", "source", "score"}]}``; raises TimeoutError over budget."""
        started = time.monotonic()
        try:
            return await asyncio.wait_for(self._search(query), self.settings.budget_ms / 1000)
        finally:
            self.last_ms = round((time.monotonic() - started) * 1000, 1)

    async def _search(self, query: str) -> dict[str, Any]:
        vector = (await self.embedder.embed([query]))[0]
        hits = await self.kb.search(self.tenant, self.collection, vector, k=self.settings.top_k)
        kept = [h for h in hits if h.score >= self.settings.min_score]
        if not kept:
            key = (self.tenant, self.collection)
            if not hits and key not in _EMPTY_WARNED and await self.kb.count(*key) == 0:
                _EMPTY_WARNED.add(key)
                log.warning("the knowledge base of agent %s is empty: run `voxline kb build` on its agent.yaml",
                            self.collection)
            return {"results": [], "note": NOTHING_FOUND}
        return {"results": [{"text": h.text, "source": h.source, "score": round(h.score, 3)} for h in kept]}
