"""Knowledge search benchmark: tenant-filtered top-5 over many tenants of skewed sizes.

    nice -n 10 python benchmarks/knowledge_retrieval.py --n 1000000 --tenants 100

Loads N chunks into the real `knowledge_chunks` table (schema and HNSW index from the
shipped migrations; the index is dropped for the load and rebuilt from its own
definition) for T tenants whose sizes follow a Zipf law (a few large tenants, many small
ones), then settles every tenant's access path as `voxline kb build` does
(`KnowledgeStore.settle_access_path`: a partial HNSW index of its own above
`access.EXACT_MAX_ROWS` rows, none below; the builds are timed) and runs held-out
queries per tenant-size bucket through `KnowledgeStore.search` with the product's
defaults (the access path picked per tenant). In the same run, query by query, the
baseline is the previous shipped path: `path="global"` (the table-wide HNSW index with
the iterative scan), and `path="global", iterative_scan="off"` (plain HNSW, tenant
filter applied afterwards) a second reference. The variants take turns going first.
Recall@5 is against exact search over the tenant's rows in numpy.

Vectors are synthetic: clustered 384-d unit vectors (memory_retrieval.make_data's
mixture). Half of a tenant's rows (`--own-topics 0.5`) come from a few clusters of its
own (more for larger tenants: its menu, its services); the other half are spread over
all the clusters like everyone else's (businesses of one kind all have opening hours,
parking...), where a tenant owns the same small share of the rows near a query as of
the table -- the case that starves a post-filtered scan. A tenant's queries come from
the same mixture as its rows. Starts its own embedded Postgres when DATABASE_URL is
unset (a DATABASE_URL must be a throwaway database: the run empties `knowledge_chunks`
and drops indexes). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from memory_retrieval import (  # noqa: E402
    around,
    build_index,
    bulk_insert,
    exact_top5,
    pct,
    postgres_url,
    prewarm,
    progress,
    recall_at5,
    unit_centres,
)

from voxline.knowledge import access, pg_search  # noqa: E402
from voxline.knowledge.store import KnowledgeStore  # noqa: E402

COLLECTION = "kb"
INDEX = "ix_knowledge_embedding_hnsw"
PARTIAL = "ix_kb_tenant_"
BUCKETS = ("large", "medium", "small")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def tenant_sizes(n: int, tenants: int, zipf: float) -> np.ndarray:
    """Rows per tenant, largest first, summing to n."""
    w = 1.0 / np.arange(1, tenants + 1) ** zipf
    sizes = np.maximum(10, np.floor(n * w / w.sum())).astype(np.int64)
    sizes[0] += n - sizes.sum()
    return sizes


def bucket_of(rank: int, tenants: int) -> str:
    """The largest 5 % of tenants, the next 25 %, the other 70 %."""
    if rank < max(1, tenants // 20):
        return "large"
    return "medium" if rank < max(2, tenants * 3 // 10) else "small"


def make_corpus(args: argparse.Namespace) -> dict[str, Any]:
    """Rows grouped by tenant (as each tenant's build writes them), queries per bucket, truth."""
    rng = np.random.default_rng(args.seed)
    centres = unit_centres(args.clusters, rng)
    sizes = tenant_sizes(args.n, args.tenants, args.zipf)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    topics = [
        rng.choice(args.clusters, min(args.clusters, max(3, int(s) // 400)), replace=False)
        for s in sizes
    ]

    def labels(t: int, m: int) -> np.ndarray:
        own = rng.random(m) < args.own_topics
        return np.where(own, rng.choice(topics[t], m), rng.integers(0, args.clusters, m))

    data = np.empty((args.n, 384), dtype=np.float32)
    for t, (lo, size) in enumerate(zip(starts, sizes, strict=True)):
        for s in range(0, size, 100_000):
            m = min(100_000, size - s)
            data[lo + s : lo + s + m] = around(centres, labels(t, m), rng)
    ranks = {b: [t for t in range(args.tenants) if bucket_of(t, args.tenants) == b] for b in BUCKETS}
    qs: list[tuple[str, int, np.ndarray]] = []  # (bucket, tenant, vector)
    for b in BUCKETS:
        for t in rng.choice(ranks[b], args.queries_per_bucket):
            qs.append((b, int(t), around(centres, labels(t, 1), rng)[0]))
    truth = np.empty((len(qs), 5), dtype=np.int64)
    for t in {t for _, t, _ in qs}:
        mine = [i for i, (_, qt, _) in enumerate(qs) if qt == t]
        lo, hi = starts[t], starts[t] + sizes[t]
        truth[mine] = exact_top5(data[lo:hi], np.stack([qs[i][2] for i in mine])) + lo
    buckets = {
        b: {
            "tenants": len(r),
            "rows_min": int(sizes[r].min()),
            "rows_max": int(sizes[r].max()),
            "share_of_rows_min_pct": round(100 * float(sizes[r].min()) / args.n, 3),
        }
        for b, r in ranks.items()
    }
    return {"data": data, "starts": starts, "queries": qs, "truth": truth, "buckets": buckets}


def tenant_name(t: int) -> str:
    return f"t{t:03d}"


def fingerprint(args: argparse.Namespace) -> str:
    """What decides the rows loaded: a database loaded with the same can be searched again."""
    return json.dumps({k: getattr(args, k) for k in ("n", "tenants", "zipf", "own_topics", "clusters", "seed")},
                      sort_keys=True)


async def reusable(conn: Any, args: argparse.Namespace) -> dict[str, Any] | None:
    """--reuse: the load of an earlier run on this DATABASE_URL with the same data, if its
    rows and table-wide index are all there (the access paths are settled again: that
    step skips tenant indexes already valid)."""
    await conn.execute("CREATE TABLE IF NOT EXISTS bench_meta (fingerprint text PRIMARY KEY, built jsonb)")
    built = await conn.fetchval("SELECT built FROM bench_meta WHERE fingerprint = $1", fingerprint(args))
    rows = await conn.fetchval("SELECT count(*) FROM knowledge_chunks")
    has_index = await conn.fetchval("SELECT count(*) FROM pg_indexes WHERE indexname = $1", INDEX)
    if built is None or rows != args.n or not has_index:
        return None
    progress(f"reusing the {rows} rows and index of an earlier run")
    await prewarm(conn, "knowledge_chunks", "knowledge_chunks", INDEX)
    return {**json.loads(built), "reused": True}


async def load(conn: Any, args: argparse.Namespace, data: np.ndarray, starts: np.ndarray) -> dict[str, Any]:
    """COPY into an unlogged staging table, INSERT..SELECT, rebuild the migration's HNSW index."""
    if args.reuse and (built := await reusable(conn, args)):
        return built
    await conn.execute("DROP TABLE IF EXISTS bench_meta")
    create_sql = await conn.fetchval("SELECT indexdef FROM pg_indexes WHERE indexname = $1", INDEX)
    await conn.execute(f"DROP INDEX {INDEX}")
    await conn.execute("TRUNCATE knowledge_chunks")
    # Row i (id i+1) belongs to tenant t when starts[t] <= i < starts[t+1].
    load_s = await bulk_insert(
        conn,
        data,
        "INSERT INTO knowledge_chunks(tenant_id, collection, source, chunk_index, text, "
        "source_sha256, embedding, created_at) SELECT 't' || lpad(width_bucket(id, $1::bigint[])::text, 3, '0'), "
        "$2, 'doc', id - 1, 'chunk ' || id, 'x', embedding, now() FROM bench_stage ORDER BY id",
        [int(s) + 1 for s in starts[1:]],
        COLLECTION,
    )
    progress(f"loaded {data.shape[0]} rows in {load_s:.0f}s; building {create_sql}")
    index_s = await build_index(conn, args, create_sql)
    progress(f"index built in {index_s:.0f}s")
    await prewarm(conn, "knowledge_chunks", "knowledge_chunks", INDEX)
    built = {"load_s": round(load_s, 1), "index_build_s": round(index_s, 1), "index": create_sql}
    await conn.execute("CREATE TABLE bench_meta (fingerprint text PRIMARY KEY, built jsonb)")
    await conn.execute("INSERT INTO bench_meta VALUES ($1, $2)", fingerprint(args), json.dumps(built))
    return built


VARIANTS: dict[str, dict[str, Any]] = {
    "product": {},  # the shipped defaults: access path chosen per tenant
    "baseline": {"path": "global"},  # the previous shipped path: table-wide HNSW, iterative scan
    "global_iterative_off": {"path": "global", "iterative_scan": "off"},
}


def index_kind(name: str) -> str:
    return "tenant_index" if name.startswith(PARTIAL) else name


async def plan_of(store: Any, tenant: str, query: np.ndarray, path: str) -> str:
    """Which index the planner took for the statement a search sends (EXPLAIN of it,
    under the settings of the access path it was sent with)."""
    text = await pg_search.explain(store, "plan", tenant, COLLECTION, query, path=path)  # type: ignore[arg-type]
    if PARTIAL in text:
        return "tenant partial hnsw"
    if INDEX in text:
        return "global hnsw"
    return "ix_knowledge_scope" if "ix_knowledge_scope" in text else "other"


async def settle(url: str, tenants: int) -> dict[str, Any]:
    """settle_access_path for every tenant, as `voxline kb build` does after a build --
    on an engine without the driver's 30 s command timeout, which a large tenant's index
    build outlasts (with it, `kb build` fails there with a TimeoutError)."""
    from voxline.memory.db import create_engine, resolve_url
    from voxline.memory.store import Store

    store = Store(create_engine(resolve_url(url), connect_args={"timeout": 5, "command_timeout": None}))
    kb = KnowledgeStore(store)
    t0 = time.perf_counter()
    results = []
    for t in range(tenants):
        results.append(await kb.settle_access_path(tenant_name(t)))
        if results[-1].get("index_built"):
            progress(f"{tenant_name(t)}: {results[-1]['rows']} rows, index in {results[-1]['index_build_s']:.0f}s")
    total = time.perf_counter() - t0
    await store.close()
    built = [r for r in results if r.get("index_built")]
    progress(f"access paths settled in {total:.0f}s ({len(built)} tenant indexes built)")
    return {
        "settle_s": round(total, 1),
        "tenant_indexes_built": len(built),
        "tenant_index_build_s": round(sum(r["index_build_s"] for r in built), 1),
        "largest_tenant_index_build_s": round(max((r["index_build_s"] for r in built), default=0.0), 1),
        "tenant_index_rows_min": min((r["rows"] for r in built), default=None),
    }


async def sizes_mb(conn: Any) -> dict[str, Any]:
    rows = await conn.fetch("SELECT indexrelname, pg_relation_size(indexrelid) AS b FROM pg_stat_user_indexes "
                            "WHERE relname = 'knowledge_chunks'")
    by = {r[0]: r[1] for r in rows}
    mb = 1024 * 1024
    return {
        "table_mb": round(await conn.fetchval("SELECT pg_relation_size('knowledge_chunks')") / mb),
        "global_index_mb": round(by.get(INDEX, 0) / mb),
        "tenant_indexes_mb": round(sum(b for k, b in by.items() if k.startswith(PARTIAL)) / mb),
        "shared_buffers": await conn.fetchval("SHOW shared_buffers"),
    }


async def search_all(args: argparse.Namespace, url: str, corpus: dict[str, Any], conn: Any) -> dict[str, Any]:

    from voxline.memory import open_store

    defaults = {k: p.default for k, p in inspect.signature(KnowledgeStore.search).parameters.items()
                if k in ("ef_search", "max_scan_tuples", "iterative_scan", "path")}
    store = await open_store(url)
    kb = KnowledgeStore(store)
    qs, truth = corpus["queries"], corpus["truth"]
    names = list(VARIANTS)
    try:
        settled = await settle(url, args.tenants)
        settled.update(await sizes_mb(conn))
        parts = [r[0] for r in await conn.fetch("SELECT indexname FROM pg_indexes WHERE indexname LIKE $1",
                                                PARTIAL + "%")]
        await prewarm(conn, "knowledge_chunks", *parts)  # the tenant indexes were read last
        before = await index_scans(conn)
        for _, t, q in qs[:: max(1, len(qs) // 30)]:  # warm-up: connections, caches
            for v in VARIANTS.values():
                await kb.search(tenant_name(t), COLLECTION, q, k=5, **v)
        lat: dict[str, list[float]] = {name: [0.0] * len(qs) for name in names}
        found: dict[str, list[list[int]]] = {name: [[]] * len(qs) for name in names}
        for i, (_, t, q) in enumerate(qs):  # interleaved; the variant that goes first rotates
            for name in names[i % 3:] + names[: i % 3]:
                t0 = time.perf_counter()
                hits = await kb.search(tenant_name(t), COLLECTION, q, k=5, **VARIANTS[name])
                lat[name][i] = (time.perf_counter() - t0) * 1000
                found[name][i] = [h.index for h in hits]
        # The product alone, query after query, as a deployment runs it: no table-wide
        # scans of the references in between (they evict what the tenant graphs had in
        # the CPU caches). Same queries, same order; reported apart from the paired run.
        lat["product_alone"], found["product_alone"] = [0.0] * len(qs), [[]] * len(qs)
        for i, (_, t, q) in enumerate(qs):
            t0 = time.perf_counter()
            hits = await kb.search(tenant_name(t), COLLECTION, q, k=5)
            lat["product_alone"][i] = (time.perf_counter() - t0) * 1000
            found["product_alone"][i] = [h.index for h in hits]
        paths: dict[str, dict[str, int]] = {b: {} for b in BUCKETS}
        plans: dict[str, dict[str, int]] = {b: {} for b in BUCKETS}
        for b, t, q in {(b, t): (b, t, q) for b, t, q in qs}.values():  # one query per tenant
            async with store.engine.begin() as c:
                path = await access.choose(c, kb._key, tenant_name(t), COLLECTION)
            paths[b][path] = paths[b].get(path, 0) + 1
            await kb.search(tenant_name(t), COLLECTION, q, k=5)
            p = await plan_of(store, tenant_name(t), q, path)
            plans[b][p] = plans[b].get(p, 0) + 1
    finally:
        await store.close()
    after = await index_scans(conn)
    scans: dict[str, int] = {}
    for k, v in after.items():
        scans[index_kind(k)] = scans.get(index_kind(k), 0) + v - before.get(k, 0)

    def summary(name: str, sel: list[int]) -> dict[str, Any]:
        return {
            "recall_at_5": recall_at5([found[name][i] for i in sel], truth[sel]),
            "p50_ms": pct([lat[name][i] for i in sel], 50),
            "p95_ms": pct([lat[name][i] for i in sel], 95),
            "short_results_pct": round(100 * sum(len(found[name][i]) < 5 for i in sel) / len(sel), 1),
        }

    groups = {b: [i for i, (qb, _, _) in enumerate(qs) if qb == b] for b in BUCKETS}
    groups["overall"] = list(range(len(qs)))
    out: dict[str, Any] = {"settle": settled, "paths_per_tenant": paths, "plans_per_tenant": plans}
    for name, v in VARIANTS.items():
        out[name] = {"settings": {**defaults, **v}}
        out[name].update({g: summary(name, sel) for g, sel in groups.items()})
    out["product_alone"] = {g: summary("product_alone", sel) for g, sel in groups.items()}

    def ratio(a: float, b: float) -> float | None:
        return round(a / b, 3) if b else None

    out["product_vs_baseline"] = {
        g: {"recall_ratio": ratio(out["product"][g]["recall_at_5"], out["baseline"][g]["recall_at_5"]),
            "p50_ratio": ratio(out["product"][g]["p50_ms"], out["baseline"][g]["p50_ms"]),
            "p95_ratio": ratio(out["product"][g]["p95_ms"], out["baseline"][g]["p95_ms"])}
        for g in groups
    }
    out["index_scans"] = scans
    return out


async def index_scans(conn: Any) -> dict[str, int]:
    await asyncio.sleep(1.5)  # closed connections' counts are in after a moment
    rows = await conn.fetch("SELECT indexrelname, idx_scan FROM pg_stat_user_indexes "
                            "WHERE relname = 'knowledge_chunks'")
    return {r[0]: r[1] for r in rows}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import asyncpg

    started = uptime()
    t0 = time.perf_counter()
    corpus = make_corpus(args)
    gen_s = time.perf_counter() - t0
    progress(f"data, queries and exact top-5 ready in {gen_s:.0f}s")
    async with postgres_url(shared_buffers=args.shared_buffers) as url:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            built = await load(conn, args, corpus["data"], corpus["starts"])
            before_settle = uptime()
            progress("settling access paths, then searching")
            result = await search_all(args, url, corpus, conn)
            if not built.get("reused"):  # a later --reuse run reports how this one built
                await conn.execute("UPDATE bench_meta SET built = built || jsonb_build_object('first_settle', "
                                   "$1::jsonb)", json.dumps(result["settle"]))
        finally:
            await conn.close()
    return {
        "benchmark": "knowledge_retrieval",
        "n": args.n,
        "tenants": args.tenants,
        "zipf": args.zipf,
        "dim": 384,
        "clusters": args.clusters,
        "data": "synthetic clustered 384-d unit vectors",
        "own_topics": args.own_topics,
        "queries": len(corpus["queries"]),
        "exact_max_rows": access.EXACT_MAX_ROWS,
        "search": "KnowledgeStore.search(k=5): product = defaults (path per tenant); "
                  "baseline = path='global' (iterative scan); global_iterative_off = path='global', "
                  "iterative_scan='off'",
        "buckets": corpus["buckets"],
        "datagen_s": round(gen_s, 1),
        **built,
        "uptime": {"start": started, "before_settle": before_settle, "end": uptime()},
        **result,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--tenants", type=int, default=100)
    ap.add_argument("--zipf", type=float, default=1.1, help="tenant size ~ 1/rank^zipf")
    ap.add_argument("--own-topics", type=float, default=0.5,
                    help="share of a tenant's rows drawn from clusters of its own")
    ap.add_argument("--queries-per-bucket", type=int, default=100)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--maintenance-work-mem", default="8GB")
    ap.add_argument("--parallel-workers", type=int, default=2)
    ap.add_argument("--shared-buffers", default="8GB",
                    help="of the embedded server (table and indexes take 5.2 GB at 1M rows)")
    ap.add_argument("--reuse", action="store_true",
                    help="with DATABASE_URL: search the rows and indexes an earlier run with the same data "
                         "left there (tenant indexes already built are not built again)")
    print(json.dumps(asyncio.run(run(ap.parse_args()))))


if __name__ == "__main__":
    main()
