"""``voxline kb build``: an agent's ``knowledge:`` documents into the store.

Each source file is read, chunked, embedded with the local MiniLM embedder and written
with its sha256: a file that did not change since the last build is skipped, a file
that went away is removed. A progress bar shows the chunks embedded. On Postgres the
tenant then gets the access path its size calls for (``voxline.knowledge.access``): a
partial HNSW index of its own once a collection passes ``EXACT_MAX_ROWS`` chunks,
dropped before a rewrite of most of its rows and built again after it.
"""

from __future__ import annotations

import asyncio
import glob
from pathlib import Path
from typing import Any

from voxline.errors import SpecError
from voxline.knowledge.chunks import chunk_text, read_source
from voxline.knowledge.store import KnowledgeStore, sha256
from voxline.spec import AgentSpec, load_spec

EMBED_BATCH = 32


def collection_of(spec: AgentSpec) -> str:
    assert spec.knowledge is not None
    return spec.knowledge.collection or spec.name


def source_files(spec: AgentSpec) -> list[Path]:
    """The files the spec's ``knowledge.sources`` globs name (relative to its folder)."""
    if spec.knowledge is None:
        raise SpecError([("knowledge", f"agent {spec.name!r} has no knowledge: block")])
    files: set[Path] = set()
    for pattern in spec.knowledge.sources:
        path = Path(pattern)
        full = str(path if path.is_absolute() else spec.base_dir / path)
        files |= {Path(p).resolve() for p in glob.glob(full, recursive=True) if Path(p).is_file()}
    return sorted(files)


async def build(spec: AgentSpec, *, store: Any, embedder: Any, progress: bool = False) -> dict[str, Any]:
    """Chunk, embed and store the spec's documents; what was done, as a dict."""
    settings = spec.knowledge
    if settings is None:
        raise SpecError([("knowledge", f"agent {spec.name!r} has no knowledge: block")])
    tenant, collection = spec.memory.tenant, collection_of(spec)
    kb = KnowledgeStore(store)
    known = await kb.source_hashes(tenant, collection)
    files = source_files(spec)
    todo = []
    for path in files:
        name = str(path.relative_to(spec.base_dir)) if path.is_relative_to(spec.base_dir) else str(path)
        text = read_source(path)
        digest = sha256(text)
        if known.get(name) != digest:
            todo.append((name, digest, chunk_text(text, name, max_chars=settings.chunk_chars,
                                                  overlap_chars=settings.overlap_chars)))
    total = sum(len(c) for _, _, c in todo)
    names = {str(p.relative_to(spec.base_dir)) if p.is_relative_to(spec.base_dir) else str(p) for p in files}
    gone = sorted(set(known) - names)
    rewritten = total + await kb.rows_of(tenant, collection, [n for n, _, _ in todo] + gone)
    rebuilt = await kb.before_rewrite(tenant, rewritten)
    bar = _bar(total, progress)
    try:
        for name, digest, chunks in todo:
            vectors = []
            for i in range(0, len(chunks), EMBED_BATCH):
                batch = chunks[i:i + EMBED_BATCH]
                vectors.append(await embedder.embed([c.text for c in batch]))
                bar.update(len(batch))
            import numpy as np

            embeddings = np.concatenate(vectors) if vectors else np.zeros((0, embedder.dim), dtype=np.float32)
            await kb.replace_source(tenant, collection, name, digest, chunks, embeddings)
    finally:
        bar.close()
    await kb.remove_sources(tenant, collection, gone)
    path = await kb.settle_access_path(tenant)
    return {"agent": spec.name, "tenant": tenant, "collection": collection, "files": len(files),
            "embedded_files": len(todo), "unchanged_files": len(files) - len(todo), "removed_files": len(gone),
            "chunks_embedded": total, "chunks": await kb.count(tenant, collection),
            "index_rebuilt": rebuilt, **path}


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int, progress: bool) -> Any:
    if not progress or not total:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="chunk", desc="embedding", dynamic_ncols=True)


async def _build_cli(agent: Path, database_url: str | None) -> dict[str, Any]:
    from voxline.memory import local_embedder, open_store

    spec = load_spec(agent)
    store = await open_store(database_url)
    try:
        embedder = await asyncio.to_thread(local_embedder)
        return await build(spec, store=store, embedder=embedder, progress=True)
    finally:
        await store.close()


def kb_build(agent: Path, database_url: str | None = None) -> dict[str, Any]:
    """What ``voxline kb build AGENT`` runs: build the agent's knowledge base."""
    return asyncio.run(_build_cli(agent, database_url))
