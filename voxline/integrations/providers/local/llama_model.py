"""One loaded GGUF model, shared by every call of the process.

llama.cpp is not re-entrant: whoever generates holds ``lock``. The context keeps the
tokens it evaluated last, so a prompt that extends them costs only its new tokens.
Calls interleave, though, and every agent's prompt starts with its own system prompt
and tools; so the state of each evaluated agent prefix (the KV cells of sequence 0,
not llama-cpp-python's whole state with its logits buffer, which is ~300 MB for this
vocabulary) is kept, and a prompt that shares more with a kept prefix than with the
context resumes from it instead of evaluating the prefix again.

A prompt can also be evaluated ahead of the turn that will extend it (``prepare``: the
conversation an agent would be handed), in small chunks that give way at once to a
turn waiting for the model (``hold`` counts who waits).
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voxline.extras import require
from voxline.integrations.providers.local.llama_prefixes import PrefixFiles

KEPT_PREFIXES = 8  # agents whose prefix stays ready; ~12 KB a token each for a 0.5B model
MIN_GAIN = 32  # tokens: below this, evaluating beats copying the state back
PREPARE_CHUNK = 16  # tokens evaluated between two looks for a turn that wants the model


class LoadedLlama:
    def __init__(self, path: Path, n_ctx: int, n_threads: int):
        llama_cpp = require("llama_cpp", "local")
        self.path = path
        self.llama = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, verbose=False)
        self._api = llama_cpp.llama_cpp
        self._grammar_cls = llama_cpp.LlamaGrammar
        self.lock = threading.Lock()
        self._waiting = 0  # threads waiting in hold()
        self._count = threading.Lock()
        self._grammars: dict[str, Any] = {}
        self._prefixes: OrderedDict[tuple[int, ...], Snapshot] = OrderedDict()
        self.resumed = 0  # how often a kept prefix was restored (tests, metrics)
        self.files = PrefixFiles.for_model(path, n_ctx, getattr(llama_cpp, "__version__", "?"))

    def close(self) -> None:
        if self.lock.acquire(timeout=1):  # a generation still running keeps its model
            try:
                self.llama.close()
            finally:
                self.lock.release()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """``lock``, counted while it is waited for: a preparation gives way to a wait."""
        with self._count:
            self._waiting += 1
        try:
            self.lock.acquire()
        finally:
            with self._count:
                self._waiting -= 1
        try:
            yield
        finally:
            self.lock.release()

    @property
    def wanted(self) -> bool:
        """Whether a generation (or warm-up) waits for the model."""
        return self._waiting > 0

    def grammar(self, gbnf: str) -> Any:
        if gbnf not in self._grammars:
            self._grammars[gbnf] = self._grammar_cls.from_string(gbnf, verbose=False)
        return self._grammars[gbnf]

    def tokens(self, text: str) -> list[int]:
        return self.llama.tokenize(text.encode(), add_bos=False, special=True)

    # The methods below must be called with ``lock`` held.

    def snapshot(self) -> Snapshot | None:
        """The state of what the context holds now."""
        llama = self.llama
        tokens = tuple(int(t) for t in llama._input_ids)
        if not tokens:
            return None
        ctx = llama._ctx.ctx
        data = bytearray(self._api.llama_state_seq_get_size(ctx, 0))
        written = self._api.llama_state_seq_get_data(ctx, _view(data), len(data), 0)
        del data[written:]
        return Snapshot(tokens, data)

    def keep_prefix(self) -> Snapshot | None:
        """Keep what the context holds now (an agent's evaluated prefix) for every call."""
        snap = self.snapshot()
        if snap is not None:
            self._keep(snap)
        return snap

    def _keep(self, snap: Snapshot) -> None:
        self._prefixes.pop(snap.tokens, None)
        self._prefixes[snap.tokens] = snap
        while len(self._prefixes) > KEPT_PREFIXES:
            self._prefixes.popitem(last=False)

    def warm(self, prompt: list[int], *, cached_only: bool = False) -> str | None:
        """Make ``prompt`` a kept prefix: already kept, read from disk, or evaluated now
        (and written to disk for the next process). Which of the three it was; None when
        ``cached_only`` and it would have to be evaluated."""
        tokens = tuple(int(t) for t in prompt)
        if tokens in self._prefixes:
            self._prefixes.move_to_end(tokens)
            return "memory"
        data = self.files.load(tokens) if self.files else None
        if data is not None:
            self._keep(Snapshot(tokens, data))
            return "disk"
        if cached_only:
            return None
        self.resume(prompt)
        self.llama.create_completion(prompt, max_tokens=1, temperature=0)
        snap = self.keep_prefix()
        if self.files and snap is not None and snap.tokens == tokens:
            self.files.save(snap.tokens, snap.data)
        return "evaluated"

    def cached(self, prompt: list[int]) -> int:
        """How many of ``prompt``'s first tokens the context holds evaluated."""
        return _common(self.llama._input_ids, prompt)

    def prepare(self, prompt: list[int], own: Snapshot | None,
                stop: Callable[[], bool]) -> tuple[Snapshot | None, bool]:
        """Evaluate ``prompt`` without generating, from the kept state that saves the most,
        ``PREPARE_CHUNK`` tokens at a time until it is done or ``stop()``. The state reached
        (None if nothing was), and whether all of ``prompt`` is in it."""
        self.resume(prompt, own)
        llama = self.llama
        done = self.cached(prompt)
        llama.n_tokens = done  # eval() drops the cells after it
        while done < len(prompt) and not stop():
            llama.eval(prompt[done:done + PREPARE_CHUNK])
            done = llama.n_tokens
        return self.snapshot(), done == len(prompt)

    def resume(self, prompt: list[int], own: Snapshot | None = None) -> None:
        """Before evaluating ``prompt``: restore the kept state that saves the most work
        (a call's ``own`` last state or an agent prefix); generation trims what differs."""
        llama = self.llama
        best, best_len = None, _common(llama._input_ids, prompt) + MIN_GAIN
        for snap in [*self._prefixes.values(), *([own] if own else [])]:
            n = _common(snap.tokens, prompt)
            if n >= best_len:
                best, best_len = snap, n
        if best is None:
            return
        if best.tokens in self._prefixes:
            self._prefixes.move_to_end(best.tokens)
        llama._ctx.kv_cache_clear()
        if self._api.llama_state_seq_set_data(llama._ctx.ctx, _view(best.data), len(best.data), 0) == 0:
            llama.reset()  # nothing usable is left in the context: evaluate from scratch
            return
        llama.input_ids[: len(best.tokens)] = best.tokens
        llama.n_tokens = len(best.tokens)
        llama._requires_eval = True  # the logits buffer is not restored: re-evaluate one token
        self.resumed += 1


@dataclass(frozen=True)
class Snapshot:
    """Evaluated tokens and their KV cells (~12 KB a token for the 0.5B model)."""

    tokens: tuple[int, ...]
    data: bytearray  # never changed once taken; a bytearray so llama.cpp reads it in place


def _view(data: bytearray) -> Any:
    return (ctypes.c_uint8 * len(data)).from_buffer(data)


def _common(a: Any, b: Any) -> int:
    """Length of the common prefix of two token sequences."""
    x, y = np.asarray(a), np.asarray(b)
    n = min(len(x), len(y))
    differ = np.flatnonzero(x[:n] != y[:n])
    return int(differ[0]) if differ.size else n
