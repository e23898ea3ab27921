"""Knowledge base: chunking, ``voxline kb build`` into the store (SQLite here, Postgres with
pgvector below), search under its latency budget, tenant-scoped search that stays right
when a tenant owns a small share of the rows (pgvector 0.8 iterative index scans)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.orchestration.kit import AGENTS
from voxline.knowledge.build import build
from voxline.knowledge.chunks import chunk_text
from voxline.knowledge.search import NOTHING_FOUND, KnowledgeSearch
from voxline.knowledge.store import KnowledgeStore
from voxline.memory import local_embedder, open_store
from voxline.spec import load_spec


def test_chunks_keep_their_heading_and_size():
    text = "# Parking\n\n" + " ".join(f"Sentence number {i} is here." for i in range(60)) + "\n\n# Dogs\n\nDogs ok."
    chunks = chunk_text(text, "faq.md", max_chars=300, overlap_chars=40)
    assert all(c.text.startswith(("Parking: ", "Dogs: ")) for c in chunks)
    assert all(len(c.text) <= 300 + len("Parking: ") + 40 for c in chunks)
    assert chunks[-1].text == "Dogs: Dogs ok." and [c.index for c in chunks] == list(range(len(chunks)))


@pytest.mark.models
async def test_build_then_search_on_sqlite(tmp_path, caplog):
    folder = tmp_path / "kb"
    shutil.copytree(AGENTS / "kb", folder)
    spec = load_spec(folder / "agent.yaml")
    store = await open_store(str(tmp_path / "kb.db"))
    embedder = local_embedder()
    try:
        first = await build(spec, store=store, embedder=embedder)
        assert first["files"] == 2 and first["embedded_files"] == 2 and first["chunks"] >= 4
        again = await build(spec, store=store, embedder=embedder)
        assert again["embedded_files"] == 0 and again["unchanged_files"] == 2
        (folder / "docs" / "hours.md").unlink()
        gone = await build(spec, store=store, embedder=embedder)
        assert gone["removed_files"] == 1 and gone["chunks"] == first["chunks"] - 1
        search = KnowledgeSearch(spec, store, embedder)
        found = await search.search("where can I leave my car")
        assert found["results"][0]["source"] == "docs/faq.md" and "garage" in found["results"][0]["text"]
        assert search.last_ms < spec.knowledge.budget_ms
        # Another tenant's agent with the same collection name sees nothing of it: for that
        # agent the base is empty, which the operator is told once, and the agent is told
        # not to turn "nothing found" into "no".
        other = spec.model_copy(update={"memory": spec.memory.model_copy(update={"tenant": "other"})})
        with caplog.at_level("WARNING", logger="voxline.knowledge"):
            for _ in range(2):
                nothing = await KnowledgeSearch(other, store, embedder).search("parking")
                assert nothing == {"results": [], "note": NOTHING_FOUND}
        assert [r.getMessage() for r in caplog.records].count(
            f"the knowledge base of agent {spec.name} is empty: run `voxline kb build` on its agent.yaml") == 1
        slow = spec.model_copy(update={"knowledge": spec.knowledge.model_copy(update={"budget_ms": 0.01})})
        with pytest.raises(TimeoutError):
            await KnowledgeSearch(slow, store, embedder).search("parking")
    finally:
        await store.close()


@pytest.mark.services
async def test_tenant_filtered_search_on_pgvector_finds_k_rows_of_a_small_tenant(postgres_url):
    """A small tenant's 20 rows among 3,000: an HNSW scan filtered afterwards finds few of
    them; the iterative scan returns the exact top k."""
    from voxline.knowledge.chunks import Chunk

    store = await open_store(postgres_url)
    kb = KnowledgeStore(store)
    rng = np.random.default_rng(7)
    try:
        vectors = rng.normal(size=(3020, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        for t in range(3):
            rows = vectors[t * 1000:(t + 1) * 1000]
            chunks = [Chunk("doc", i, f"big {i}") for i in range(1000)]
            await kb.replace_source(f"big{t}", "kb", "doc", "x", chunks, rows)
        small = vectors[3000:]
        await kb.replace_source("small", "kb", "doc", "x", [Chunk("doc", i, f"small {i}") for i in range(20)], small)
        query = rng.normal(size=384).astype(np.float32)
        query /= np.linalg.norm(query)
        hits = await kb.search("small", "kb", query, k=5, ef_search=40)
        exact = np.argsort(-(small @ query))[:5]
        assert [h.index for h in hits] == [int(i) for i in exact]
    finally:
        for t in [*(f"big{t}" for t in range(3)), "small"]:
            await kb.remove_sources(t, "kb", ["doc"])
        await store.close()
