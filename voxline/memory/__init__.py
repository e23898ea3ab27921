"""Persistence and long-term memory: call records, transcripts, summaries, caller facts,
and live state shared between server processes.

    store = await open_store(os.environ.get("DATABASE_URL"))   # SQLite by default
    recorder = CallRecorder(store)                             # never blocks the audio path
    memory = MemoryService(store, local_embedder())
"""

from voxline.memory.embeddings import Embedder, LocalMiniLM, OpenAIEmbedder, local_embedder
from voxline.memory.extract import Fact, Line, extractive_summary
from voxline.memory.live import InProcessLiveState, LiveState, RedisLiveState, live_state_from_env
from voxline.memory.migrate import SchemaError, upgrade, upgrade_async
from voxline.memory.policy import RetrievalProfile, WritePolicy
from voxline.memory.recorder import CallRecorder, RecorderOptions
from voxline.memory.records import (
    CallerKey,
    CallRecord,
    MemoryRecord,
    StoreError,
    TenantMismatch,
    TurnRecord,
)
from voxline.memory.redact import redact
from voxline.memory.service import MemoryService, Recalled, RememberResult
from voxline.memory.store import Store, open_store

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
