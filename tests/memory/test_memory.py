"""Long-term memory: summaries, facts under a write policy, merging, recall, erasure."""

from __future__ import annotations

import json

from mem_helpers import make_call

from voxline.memory import Line, MemoryService, RetrievalProfile, Store, TenantMismatch, WritePolicy
from voxline.memory.embeddings import LocalMiniLM

FIRST_CALL = [
    ("user", "Hi, my name is Alice Moreau. I'd like to book a table for two on Friday."),
    ("assistant", "Of course Alice. I've booked a table for two on Friday at 7 pm."),
    ("user", "I prefer a quiet table by the window. My card is 4111 1111 1111 1111."),
    ("assistant", "Noted, a quiet table by the window. We'll call you if anything changes."),
]


async def test_remember_without_llm_then_recall_in_next_call(
    store: Store, memory: MemoryService, tenant: str
) -> None:
    cid = await make_call(store, tenant, caller="+15550001111", turns=FIRST_CALL)
    res = await memory.remember_call(tenant, cid)  # transcript loaded from the store
    assert "4111" not in res.summary and res.summary
    texts = [m.text for m in await memory.list_memories(tenant, "+15550001111")]
    assert any("Alice Moreau" in t for t in texts)
    assert any("window" in t for t in texts)
    assert not any("4111" in t for t in texts)  # the card number was never stored

    recalled = await memory.recall(
        tenant, "+1 555 000 1111", "where do I like to sit?", budget_ms=10_000
    )
    mems = [r for r in recalled if r.source == "memory"]
    assert "window" in mems[0].text
    assert any(r.source == "summary" for r in recalled)
    block = MemoryService.format_context(recalled)
    assert "Alice Moreau" in block and block.startswith("What you remember")


async def test_llm_summarizer_and_policy(store: Store, embedder: LocalMiniLM, tenant: str) -> None:
    prompts: list[str] = []

    async def llm(prompt: str) -> str:
        prompts.append(prompt)
        return (
            "Sure! ```json\n"
            + json.dumps(
                {
                    "summary": "Bob asked about his prescription refill and his delivery.",
                    "facts": [
                        {"kind": "name", "text": "The caller is Bob Stone.", "importance": 0.9},
                        {
                            "kind": "problem",
                            "text": "Bob is waiting for his diabetes medication.",
                            "importance": 0.8,
                        },
                        {
                            "kind": "preference",
                            "text": "Bob wants deliveries after 5 pm.",
                            "importance": 0.6,
                        },
                        {"kind": "secret", "text": "Bob's door code is 1234.", "importance": 0.9},
                        {
                            "kind": "contact",
                            "text": "Bob's loyalty code is ZX-99.",
                            "importance": 0.5,
                        },
                    ],
                }
            )
            + "\n```"
        )

    policy = WritePolicy(deny_patterns=(r"loyalty code",))
    svc = MemoryService(store, embedder, policy=policy)
    lines = [Line("user", "My card is 4111-1111-1111-1111, refill please")]
    cid = await make_call(store, tenant, caller="web:bob")
    res = await svc.remember_call(tenant, cid, lines, summarize=llm)
    assert "4111" not in prompts[0]  # card numbers never leave for the summarizer
    assert res.summary.startswith("Bob asked")
    kinds = sorted(k for k, _ in res.rejected)
    assert kinds == ["contact", "problem", "secret"]
    texts = {m.text for m in await svc.list_memories(tenant, "web:bob")}
    assert texts == {"The caller is Bob Stone.", "Bob wants deliveries after 5 pm."}


async def test_broken_summarizer_falls_back(
    store: Store, memory: MemoryService, tenant: str
) -> None:
    async def broken(prompt: str) -> str:
        raise RuntimeError("llm down")

    cid = await make_call(store, tenant, caller="+15550002222", turns=FIRST_CALL[:2])
    res = await memory.remember_call(tenant, cid, summarize=broken)
    assert res.summary.startswith("Caller said:")
    assert res.inserted


async def test_facts_merge_instead_of_duplicating(
    store: Store, memory: MemoryService, tenant: str
) -> None:
    caller = "+15550003333"
    c1 = await make_call(
        store,
        tenant,
        caller=caller,
        turns=[("user", "My name is Carol. I prefer morning appointments.")],
    )
    r1 = await memory.remember_call(tenant, c1)
    c2 = await make_call(
        store,
        tenant,
        caller=caller,
        turns=[("user", "This is Carol Jones. I prefer morning appointments please.")],
    )
    r2 = await memory.remember_call(tenant, c2)
    assert len(r1.inserted) == 2 and len(r2.updated) == 2 and not r2.inserted
    mems = await memory.list_memories(tenant, caller)
    assert len(mems) == 2
    assert any(
        m.text == "The caller's name is Carol Jones." and m.source_call_id == c2 for m in mems
    )


async def test_recall_profile_weights_importance(
    store: Store, embedder: LocalMiniLM, tenant: str
) -> None:
    cid = await make_call(store, tenant, caller="web:dan")
    caller_id = await store.call_owner(tenant, cid)
    assert caller_id
    texts = [("Dan likes jazz music.", 0.1), ("Dan has an open refund request.", 0.95)]
    vecs = await embedder.embed([t for t, _ in texts])
    for (t, imp), v in zip(texts, vecs, strict=True):
        await store.insert_memory(
            tenant, caller_id, kind="fact", text=t, embedding=v, importance=imp, source_call_id=cid
        )
    by_importance = MemoryService(
        store,
        embedder,
        profile=RetrievalProfile(w_similarity=0, w_recency=0, w_importance=1, summaries=0),
    )
    got = await by_importance.recall(tenant, "web:dan", "what music?", budget_ms=10_000)
    assert got[0].text == "Dan has an open refund request."
    by_similarity = MemoryService(
        store,
        embedder,
        profile=RetrievalProfile(w_similarity=1, w_recency=0, w_importance=0, summaries=0),
    )
    got = await by_similarity.recall(
        tenant, "web:dan", "what music does he like?", budget_ms=10_000
    )
    assert got[0].text == "Dan likes jazz music."


async def test_latency_guard_skips_and_counts(
    store: Store, memory: MemoryService, tenant: str
) -> None:
    cid = await make_call(store, tenant, caller="web:erin", turns=FIRST_CALL)
    await memory.remember_call(tenant, cid)
    assert await memory.recall(tenant, "web:erin", "table", budget_ms=0.001) == []
    assert memory.stats.skipped_over_budget == 1
    got = await memory.recall(tenant, "web:erin", "table", budget_ms=10_000)
    assert got, memory.stats
    assert memory.stats.skipped_over_budget == 1


async def test_unknown_caller_recalls_nothing(memory: MemoryService, tenant: str) -> None:
    assert await memory.recall(tenant, "+15559999999", "hello") == []


async def test_memory_is_tenant_scoped(
    store: Store, memory: MemoryService, tenant: str, other_tenant: str
) -> None:
    caller = "+15550004444"
    cid = await make_call(store, tenant, caller=caller, turns=FIRST_CALL)
    await memory.remember_call(tenant, cid)
    # Same phone number under another tenant is another caller with nothing known.
    assert await memory.recall(other_tenant, caller, "table") == []
    assert await memory.list_memories(other_tenant, caller) == []
    try:
        await memory.remember_call(other_tenant, cid)
        raise AssertionError("remember_call on another tenant's call must fail")
    except TenantMismatch:
        pass
    assert (await memory.forget(other_tenant, caller))["memories"] == 0
    some = (await memory.list_memories(tenant, caller))[0]
    assert not await store.update_memory(
        other_tenant,
        some.id,
        text="hijacked",
        embedding=[0.0] * 384,
        importance=1,
        source_call_id=None,
    )
    assert some.text in {m.text for m in await memory.list_memories(tenant, caller)}
    assert await store.search_tenant(other_tenant, (await memory.embedder.embed(["x"]))[0]) == []


async def test_forget_erases_and_audits(store: Store, memory: MemoryService, tenant: str) -> None:
    caller = "+15550005555"
    cid = await make_call(store, tenant, caller=caller, turns=FIRST_CALL)
    await memory.remember_call(tenant, cid)
    await memory.recall(tenant, caller, "table", budget_ms=10_000)
    counts = await memory.forget(tenant, caller, actor="ops:jane")
    assert counts["memories"] >= 2 and counts["summaries"] == 1 and counts["turns"] == 4
    assert await memory.list_memories(tenant, caller) == []
    assert await memory.recall(tenant, caller, "table") == []
    call = await store.get_call(tenant, cid)
    assert call is not None and call.turns == [] and call.from_ is None
    audit = await store.audit_log(tenant)
    forget = next(a for a in audit if a["action"] == "caller.forget")
    assert forget["actor"] == "ops:jane" and "555" not in (forget["target_id"] or "")
    assert {"memory.recall", "memory.list", "caller.forget"} <= {a["action"] for a in audit}
