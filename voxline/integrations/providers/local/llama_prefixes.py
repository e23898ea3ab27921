"""Evaluated agent prefixes kept on disk, so only the first process ever pays for them.

Evaluating an agent's system prompt and tools takes seconds on a CPU (tens of seconds
for a 1.5B model with several agents on two cores), and every fresh process (a new
worker, ``voxline simulate``, ``make demo``) paid it again. The state llama.cpp keeps for
them (the KV cells of sequence 0, ``LoadedLlama.snapshot``) is plain bytes: it is written
here once, keyed by everything that shapes it, and read back in milliseconds.

A file is ``MAGIC``, a JSON header line, the tokens (int32) and the state; the header
holds the sha256 of the rest, so a torn or altered file is never restored (it is
evaluated again and rewritten). Files are written whole and renamed into place, so
workers sharing the folder never read half of one. The folder is pruned oldest first
beyond ``MAX_BYTES``.

``VOXLINE_CACHE_DIR`` (default ``~/.cache/voxline``) holds it under ``llama-prefixes/``;
``VOXLINE_CACHE_DIR=off`` keeps prefixes in memory only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger("voxline.models")

MAGIC = b"VXKV1\n"
MAX_BYTES = 2 * 1024**3  # a 1.5B model's prefix of 1,500 tokens is ~45 MB
MAX_HEADER = 4096


def default_folder() -> Path | None:
    root = os.environ.get("VOXLINE_CACHE_DIR", "").strip()
    if root.lower() == "off":
        return None
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "voxline"
    return base / "llama-prefixes"


class PrefixFiles:
    """Prefix states of one loaded model (``identity``: what makes its state this one's)."""

    def __init__(self, folder: Path, identity: str):
        self.folder = folder
        self.identity = identity

    @classmethod
    def for_model(cls, model_path: Path, n_ctx: int, runtime: str) -> PrefixFiles | None:
        folder = default_folder()
        if folder is None:
            return None
        stat = model_path.stat()
        # The state's layout depends on the weights, the context size and llama.cpp itself.
        identity = f"{model_path.name}:{stat.st_size}:{int(stat.st_mtime)}:{n_ctx}:{runtime}"
        return cls(folder, identity)

    def _path(self, tokens: tuple[int, ...]) -> Path:
        h = hashlib.sha256(self.identity.encode())
        h.update(np.asarray(tokens, dtype="<i4").tobytes())
        return self.folder / f"{h.hexdigest()[:40]}.kv"

    def load(self, tokens: tuple[int, ...]) -> bytearray | None:
        """The saved state for exactly ``tokens``, or None (missing, torn, someone else's)."""
        path = self._path(tokens)
        try:
            with path.open("rb") as f:
                if f.read(len(MAGIC)) != MAGIC:
                    return None
                header = json.loads(f.readline(MAX_HEADER))
                body = f.read()
        except (OSError, ValueError):
            return None
        n = len(tokens) * 4
        if (not isinstance(header, dict) or header.get("identity") != self.identity
                or header.get("sha256") != hashlib.sha256(body).hexdigest() or len(body) <= n
                or np.frombuffer(body[:n], dtype="<i4").tolist() != list(tokens)):
            log.warning("ignoring a damaged prefix file %s", path.name)
            return None
        os.utime(path)  # recently used: pruned last
        return bytearray(body[n:])

    def save(self, tokens: tuple[int, ...], data: bytes) -> None:
        body = np.asarray(tokens, dtype="<i4").tobytes() + bytes(data)
        header = json.dumps({"identity": self.identity, "tokens": len(tokens),
                             "sha256": hashlib.sha256(body).hexdigest()}).encode() + b"\n"
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(MAGIC + header + body)
                os.replace(tmp, self._path(tokens))
            except OSError:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as e:  # a read-only or full disk only costs the next process time
            log.warning("could not keep a prefix on disk: %s", e)
            return
        self._prune()

    def _prune(self) -> None:
        try:
            files = sorted(self.folder.glob("*.kv"), key=lambda p: p.stat().st_mtime, reverse=True)
            total = 0
            for p in files:
                total += p.stat().st_size
                if total > MAX_BYTES:
                    p.unlink(missing_ok=True)
        except OSError:  # another worker pruned the same file first
            pass
