"""Fixtures for the memory suite: the same tests run on SQLite and on Postgres+pgvector.

Postgres and Redis come from tests/services.py (loaded by tests/conftest.py).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from voxline.memory import MemoryService, Store, local_embedder, open_store
from voxline.memory.embeddings import LocalMiniLM


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "voxline.db")
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    s = await open_store(database_url)
    yield s
    await s.close()


@pytest.fixture
def tenant() -> str:
    """A fresh tenant per test, so tests sharing one Postgres never see each other."""
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def other_tenant() -> str:
    return f"o-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def embedder() -> LocalMiniLM:
    return local_embedder()


@pytest.fixture
def memory(store: Store, embedder: LocalMiniLM) -> MemoryService:
    return MemoryService(store, embedder)
