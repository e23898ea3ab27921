"""Persistence and long-term memory: call records, transcripts, summaries, caller facts,
and live state shared between server processes.

    store = await open_store(os.environ.get("DATABASE_URL"))   # SQLite by default
    recorder = CallRecorder(store)                             # never blocks the audio path
    memory = MemoryService(store, local_embedder())

Importing this package is cheap: names load on first use, so `voxline.spec` can take
`voxline.memory.settings` without pulling in SQLAlchemy, numpy or onnxruntime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Light (pure Python + pydantic), and `redact` must be bound to the function before
# anything imports the submodule of the same name.
from voxline.memory.policy import RetrievalProfile, WritePolicy
from voxline.memory.redact import redact
from voxline.memory.settings import MemorySettings

if TYPE_CHECKING:
    from voxline.memory.embeddings import Embedder, LocalMiniLM, OpenAIEmbedder, local_embedder
    from voxline.memory.extract import Fact, Line, extractive_summary
    from voxline.memory.live import (
        InProcessLiveState,
        LiveState,
        RedisLiveState,
        live_state_from_env,
    )
    from voxline.memory.migrate import SchemaError, upgrade, upgrade_async
    from voxline.memory.recorder import CallRecorder, RecorderOptions
    from voxline.memory.records import (
        CallerKey,
        CallRecord,
        MemoryRecord,
        StoreError,
        TenantMismatch,
        TurnRecord,
    )
    from voxline.memory.service import MemoryService, Recalled, RememberResult
    from voxline.memory.store import Store, open_store

_WHERE = {
    "CallRecord": "voxline.memory.records",
    "CallRecorder": "voxline.memory.recorder",
    "CallerKey": "voxline.memory.records",
    "Embedder": "voxline.memory.embeddings",
    "Fact": "voxline.memory.extract",
    "InProcessLiveState": "voxline.memory.live",
    "Line": "voxline.memory.extract",
    "LiveState": "voxline.memory.live",
    "LocalMiniLM": "voxline.memory.embeddings",
    "MemoryRecord": "voxline.memory.records",
    "MemoryService": "voxline.memory.service",
    "OpenAIEmbedder": "voxline.memory.embeddings",
    "Recalled": "voxline.memory.service",
    "RecorderOptions": "voxline.memory.recorder",
    "RedisLiveState": "voxline.memory.live",
    "RememberResult": "voxline.memory.service",
    "SchemaError": "voxline.memory.migrate",
    "Store": "voxline.memory.store",
    "StoreError": "voxline.memory.records",
    "TenantMismatch": "voxline.memory.records",
    "TurnRecord": "voxline.memory.records",
    "extractive_summary": "voxline.memory.extract",
    "live_state_from_env": "voxline.memory.live",
    "local_embedder": "voxline.memory.embeddings",
    "open_store": "voxline.memory.store",
    "upgrade": "voxline.memory.migrate",
    "upgrade_async": "voxline.memory.migrate",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'voxline.memory' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "CallRecord",
    "CallRecorder",
    "CallerKey",
    "Embedder",
    "Fact",
    "InProcessLiveState",
    "Line",
    "LiveState",
    "LocalMiniLM",
    "MemoryRecord",
    "MemoryService",
    "MemorySettings",
    "OpenAIEmbedder",
    "Recalled",
    "RecorderOptions",
    "RedisLiveState",
    "RememberResult",
    "RetrievalProfile",
    "SchemaError",
    "Store",
    "StoreError",
    "TenantMismatch",
    "TurnRecord",
    "WritePolicy",
    "extractive_summary",
    "live_state_from_env",
    "local_embedder",
    "open_store",
    "redact",
    "upgrade",
    "upgrade_async",
]
