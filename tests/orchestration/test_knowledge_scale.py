"""Tenant-filtered knowledge search on the real embedded Postgres: each tenant read the
way its size calls for (exact for a small one, its own partial HNSW index for a large
one, built by ``voxline kb build``), recall against exact search, tenant isolation."""

from __future__ import annotations

import json
import shutil
import uuid

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.orchestration.kit import AGENTS
from voxline.knowledge import access, pg_search
from voxline.knowledge.chunks import Chunk
from voxline.knowledge.store import KnowledgeStore
from voxline.memory import open_store

pytestmark = pytest.mark.services


def _last_json(output: str) -> dict:
    """The command's JSON line (the progress bar writes to the same captured stream)."""
    return json.loads(next(line[line.index("{"):] for line in reversed(output.splitlines()) if "{" in line))


_CENTRES = np.random.default_rng(5).standard_normal((200, 384)).astype(np.float32)


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    """Clustered unit vectors (as in benchmarks/memory_retrieval.py)."""
    v = _CENTRES[rng.integers(0, len(_CENTRES), n)] / np.sqrt(384)
    v = v + rng.standard_normal((n, 384)).astype(np.float32) * 0.06
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


async def _plan(store, tenant: str, collection: str, query: np.ndarray, path: str) -> str:
    """The plan of the statement a search sends, under the settings it is sent with."""
    return await pg_search.explain(store, "plan", tenant, collection, query, path=path)


async def test_small_exact_large_own_index_recall_and_isolation(postgres_url):
    rng = np.random.default_rng(11)
    run = uuid.uuid4().hex[:8]
    big, small = f"big-{run}'; DROP TABLE x; --", f"small-{run}"  # an id that needs quoting
    sizes = {big: access.EXACT_MAX_ROWS + 1500, small: 800, f"other-{run}": 1200}
    store = await open_store(postgres_url)
    kb = KnowledgeStore(store)
    data = {t: _unit(rng, n) for t, n in sizes.items()}
    try:
        for t, rows in data.items():
            await kb.replace_source(t, "kb", "doc", "x", [Chunk("doc", i, f"{t} {i}") for i in range(len(rows))], rows)
            await kb.settle_access_path(t)
        async with store.engine.connect() as conn:
            import sqlalchemy as sa

            indexes = {r.indexname: r.indexdef for r in await conn.execute(sa.text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'knowledge_chunks'"))}
        assert access.index_name(big) in indexes and access.index_name(small) not in indexes
        assert "tenant_id)::text = 'big-" in indexes[access.index_name(big)]  # quoted by Postgres
        access.forget(big), access.forget(small)
        async with store.engine.begin() as conn:
            assert await access.choose(conn, kb._key, small, "kb") == "exact"
            assert await access.choose(conn, kb._key, big, "kb") == "tenant_index"
        query = _unit(rng, 1)[0]
        assert access.index_name(big) in await _plan(store, big, "kb", query, "tenant_index")
        assert "hnsw" not in await _plan(store, small, "kb", query, "exact")

        recall = {}
        for t, rows in data.items():
            found = 0
            for q in _unit(rng, 25):
                exact = set(np.argsort(-(rows @ q))[:5].tolist())
                hits = await kb.search(t, "kb", q, k=5)
                assert all(h.text.startswith(f"{t} ") for h in hits)  # never another tenant's rows
                found += len(exact & {h.index for h in hits})
            recall[t] = found / 125
        assert min(recall.values()) >= 0.95, recall
        # The exact path is exact.
        q = _unit(rng, 1)[0]
        assert [h.index for h in await kb.search(small, "kb", q, k=5)] == np.argsort(-(data[small] @ q))[:5].tolist()
        # The search pool's connections keep their planner settings; the store's others never see them.
        async with store.engine.connect() as conn:
            assert (await conn.execute(sa.text("SHOW enable_bitmapscan"))).scalar_one() == "on"
        # A search connection that died (as when Postgres restarts) is replaced: the search answers.
        pool = store.side_engine("knowledge", **pg_search.POOL)
        await pool.dispose()
        await kb.search(big, "kb", q, k=5)

        async def search_pid() -> int:
            async with pool.connect() as conn:
                return (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()

        for tenant in (small, big, small):  # the next search changes the settings, or not
            dead = await search_pid()
            async with store.engine.connect() as conn:
                assert (await conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": dead})).scalar_one()
            hits = [h.index for h in await kb.search(tenant, "kb", q, k=5)]
            if tenant == small:
                assert hits == np.argsort(-(data[small] @ q))[:5].tolist()
            assert len(hits) == 5 and await search_pid() != dead
        # Shrunk below the threshold: the tenant's index goes.
        await kb.remove_sources(big, "kb", ["doc"])
        assert (await kb.settle_access_path(big))["index_dropped"] is True
        async with store.engine.connect() as conn:
            assert await access.index_state(conn, big) is None
    finally:
        for t in sizes:
            await kb.remove_sources(t, "kb", ["doc"])
            await kb.settle_access_path(t)
        await store.close()


@pytest.mark.models
def test_kb_build_cli_gives_a_large_tenant_its_index(postgres_url, tmp_path, monkeypatch):
    """Through the real `voxline kb build`: enough chunks for an index of its own, and a
    rebuild of most of them drops and rebuilds it."""
    from voxline.cli import app

    monkeypatch.setattr(access, "EXACT_MAX_ROWS", 20)  # a tenant "large" at test size
    folder = tmp_path / "kb"
    shutil.copytree(AGENTS / "kb", folder)
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    text = (folder / "agent.yaml").read_text()
    (folder / "agent.yaml").write_text(text + f"\nmemory:\n  tenant: {tenant}\n" if "memory:" not in text else text)
    many = "\n\n".join(f"# Topic {i}\n\nFact number {i} about the hotel." for i in range(40))
    (folder / "docs" / "many.md").write_text(many)
    runner = CliRunner()
    first = runner.invoke(app, ["kb", "build", str(folder / "agent.yaml"), "--database-url", postgres_url])
    assert first.exit_code == 0, first.output
    out = _last_json(first.output)
    assert out["access_path"] == "tenant_index" and out["index_built"] is True and out["chunks"] > 20
    name = out["index"]
    assert name == access.index_name(out["tenant"])

    async def check() -> str:
        import sqlalchemy as sa

        store = await open_store(postgres_url)
        try:
            async with store.engine.connect() as conn:
                assert (await conn.execute(sa.text("SELECT count(*) FROM pg_indexes WHERE indexname = :n"),
                                           {"n": name})).scalar_one() == 1
            return await _plan(store, out["tenant"], out["collection"], np.full(384, 0.05, np.float32),
                               "tenant_index")
        finally:
            await store.close()

    import asyncio

    assert name in asyncio.run(check())
    (folder / "docs" / "many.md").write_text(many.replace("hotel", "inn"))
    again = _last_json(runner.invoke(app, ["kb", "build", str(folder / "agent.yaml"), "--database-url",
                                           postgres_url]).output)
    assert again["index_rebuilt"] is True and again["index_built"] is True and again["access_path"] == "tenant_index"
    assert name in asyncio.run(check())


async def test_a_tenant_index_build_is_not_cut_by_the_command_timeout(postgres_url):
    """Every other statement has the driver's command timeout; a large tenant's index build
    takes minutes, so it has its own (here: an engine whose timeout is far shorter than the build)."""
    import sqlalchemy as sa

    from voxline.memory.db import create_engine

    tenant = f"slow-{uuid.uuid4().hex[:8]}"
    store = await open_store(postgres_url)
    short = create_engine(postgres_url, connect_args={"timeout": 5, "command_timeout": 0.2})
    try:
        rows = _unit(np.random.default_rng(5), 4000)
        await KnowledgeStore(store).replace_source(tenant, "kb", "doc", "x",
                                                   [Chunk("doc", i, f"{i}") for i in range(len(rows))], rows)
        async with short.connect() as conn:  # the short timeout is in force on this engine
            with pytest.raises(Exception) as timed_out:
                await conn.exec_driver_sql("SELECT pg_sleep(1)")
            assert "Timeout" in type(timed_out.value).__name__
        seconds = await access.create_index(short, tenant, len(rows))
        assert seconds is not None and seconds > 0.2  # it outlasted the command timeout, and finished
        async with store.engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT count(*) FROM pg_indexes WHERE indexname = :n"),
                                       {"n": access.index_name(tenant)})).scalar_one() == 1
        assert await access.create_index(short, tenant, len(rows)) is None  # valid: not built again
    finally:
        await access.drop_index(store.engine, tenant)
        await short.dispose()
        await store.close()
