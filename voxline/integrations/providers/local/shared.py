"""The local models of this process: each loads once, then every call shares it.

Loading Whisper, Piper or llama.cpp takes 0.1–2.5 s and hundreds of MB, so a per-call
load blocks the event loop and grows RSS with every call. Each model here is loaded
once per key (its path and the options that change the loaded object), under a per-key
lock so two calls asking at once wait for one load instead of doing two. Calls only
hold references to these objects; nothing points back from a model to a call.

A server calls ``await apreload(specs)`` at startup: the loads run in a thread, so the
event loop keeps serving meanwhile, and each model logs ``loading whisper-base…`` then
``loaded whisper-base in 1.2 s`` on the ``voxline.models`` logger. A missing model is
skipped there (``voxline check`` reports it; the call that needs it fails saying why).
"""

from __future__ import annotations

import asyncio
import atexit
import importlib
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from voxline.errors import VoxlineError
from voxline.extras import require

if TYPE_CHECKING:
    from voxline.spec import AgentSpec

log = logging.getLogger("voxline.models")

T = TypeVar("T")

_lock = threading.Lock()
_models: dict[Hashable, Any] = {}
_key_locks: dict[Hashable, threading.Lock] = {}
LOADS: Counter[str] = Counter()  # loads per kind since the process started (tests, metrics)


def _shared(kind: str, key: Hashable, load: Callable[[], T], label: str) -> T:
    full_key = (kind, key)
    with _lock:
        if full_key in _models:
            return _models[full_key]  # type: ignore[no-any-return]
        key_lock = _key_locks.setdefault(full_key, threading.Lock())
    with key_lock:
        with _lock:
            if full_key in _models:
                return _models[full_key]  # type: ignore[no-any-return]
        log.info("loading %s…", label)
        started = time.perf_counter()
        model = load()
        log.info("loaded %s in %.1f s", label, time.perf_counter() - started)
        with _lock:
            _models[full_key] = model
            LOADS[kind] += 1
        return model


@atexit.register
def _close() -> None:
    # llama.cpp frees its model in __del__, which fails once interpreter shutdown has
    # torn down its bindings: free it while they still exist.
    with _lock:
        models = list(_models.values())
    for model in models:
        close = getattr(model, "close", None)
        if callable(close):
            close()


THREADS_ENV = "VOXLINE_CPU_THREADS"


def thread_cap() -> int:
    """The threads each local model may use (0: no cap, each model's own default).

    From ``VOXLINE_CPU_THREADS``; ``voxline serve --workers N`` sets it to cores ÷ N so
    that N processes on one machine do not each run two-thread models on every core
    (oversubscribed, every call's latency jitters)."""
    value = os.environ.get(THREADS_ENV, "")
    return int(value) if value.isdigit() else 0


def share_cores(workers: int) -> None:
    """``workers`` processes on this machine: each one's models get cores ÷ workers
    threads, unless ``VOXLINE_CPU_THREADS`` says otherwise (set before they start)."""
    if workers > 1:
        os.environ.setdefault(THREADS_ENV, str(max(1, (os.cpu_count() or 1) // workers)))


def _capped(threads: int) -> int:
    cap = thread_cap()
    return min(threads, cap) if cap and threads else (cap or threads)


def is_loaded(kind: str, key: Hashable) -> bool:
    with _lock:
        return (kind, key) in _models


def whisper(path: str | Path, *, device: str = "cpu", compute_type: str = "int8",
            cpu_threads: int = 0, num_workers: int = 1) -> Any:
    """A faster_whisper.WhisperModel. CTranslate2 lets threads share it; ``num_workers``
    is how many transcriptions run at once (more queue)."""
    key = (str(path), device, compute_type, cpu_threads, num_workers)

    def load() -> Any:
        faster_whisper = require("faster_whisper", "local")
        return faster_whisper.WhisperModel(str(path), device=device, compute_type=compute_type,
                                           cpu_threads=_capped(cpu_threads), num_workers=num_workers)

    return _shared("whisper", key, load, Path(path).name)


def moonshine(folder: str | Path) -> Any:
    """A MoonshineModel (local/moonshine.py); it transcribes one utterance at a time."""
    from voxline.integrations.providers.local.moonshine import MoonshineModel

    return _shared("moonshine", str(folder), lambda: MoonshineModel(Path(folder)), f"moonshine {Path(folder).name}")


def piper_voice(onnx: str | Path, *, use_cuda: bool = False) -> Any:
    """A piper.PiperVoice. Its ONNX session is thread-safe and Piper serializes espeak-ng
    phonemization itself, so calls can synthesize side by side."""
    return _shared("piper", (str(onnx), use_cuda), lambda: load_piper_voice(onnx, use_cuda=use_cuda),
                   f"piper {Path(onnx).stem}")


def load_piper_voice(onnx: str | Path, *, use_cuda: bool = False) -> Any:
    piper = require("piper", "piper")
    cap = thread_cap()
    if not cap or use_cuda:
        return piper.PiperVoice.load(str(onnx), use_cuda=use_cuda)
    # PiperVoice.load takes no session options: build its session with the cap.
    import json

    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = cap, 1
    config = json.loads(Path(f"{onnx}.json").read_text(encoding="utf-8"))
    session = onnxruntime.InferenceSession(str(onnx), sess_options=options, providers=["CPUExecutionProvider"])
    return piper.PiperVoice(config=piper.PiperConfig.from_dict(config), session=session)


def llama(path: str | Path, *, n_ctx: int = 4096, n_threads: int = 2) -> Any:
    """A LoadedLlama: the llama.cpp model with the lock that serializes its use."""
    from voxline.integrations.providers.local.llama_model import LoadedLlama

    key = (str(path), n_ctx, n_threads)
    return _shared("llama", key, lambda: LoadedLlama(Path(path), n_ctx, _capped(n_threads)),
                   f"llama.cpp {Path(path).parent.name or Path(path).name}")


SMART_TURN_MODEL = "smart-turn-v3.2-cpu.onnx"  # ships inside pipecat


def smart_turn_session(path: str | None = None, *, cpu_count: int = 1) -> Any:
    """The Smart Turn v3 onnxruntime session (pipecat loads one per analyzer)."""
    model = path or str(resources.files("pipecat.audio.turn.smart_turn.data").joinpath(SMART_TURN_MODEL))

    def load() -> Any:
        import onnxruntime as ort

        # The options pipecat's LocalSmartTurnAnalyzerV3 uses.
        so = ort.SessionOptions()
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.inter_op_num_threads = 1
        so.intra_op_num_threads = cpu_count
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"])

    return _shared("smart_turn", (model, cpu_count), load, "smart-turn v3")


def silero() -> Any:
    """The Silero VAD session (kept in local/silero.py, counted here for preloading)."""
    from voxline.integrations.providers.local.silero import shared_session

    return _shared("silero", "silero_vad.onnx", shared_session, "silero vad")


def embedder(folder: Path | None = None, *, threads: int = 1) -> Any:
    """The local MiniLM sentence embedder (voxline.memory.embeddings.LocalMiniLM)."""
    from voxline.memory.embeddings import LocalMiniLM

    key = (str(folder) if folder else None, threads)
    return _shared("embedder", key, lambda: LocalMiniLM(folder, threads=threads), "minilm embedder")


@dataclass(frozen=True)
class ModelNeed:
    label: str  # what the log says: "whisper-base", "smart-turn v3"
    key: tuple[Any, ...]  # one load per distinct key
    load: Callable[[], Any]


def model_needs(specs: Iterable[AgentSpec]) -> list[ModelNeed]:
    """The distinct local models ``specs`` use, in the order they are first needed."""
    from voxline.integrations.providers import local_factories as local
    from voxline.integrations.providers.local import manifest

    needs: dict[tuple[Any, ...], ModelNeed] = {}

    def need(label: str, key: tuple[Any, ...], load: Callable[[], Any]) -> None:
        needs.setdefault(key, ModelNeed(label, key, load))

    need("silero vad", ("silero",), silero)
    from voxline.orchestration.languages import persona_spec

    specs = [persona for spec in specs  # a language persona may speak with models of its own
             for persona in (spec, *(persona_spec(spec, code) for code in spec.languages))]
    for spec in specs:
        for block in _chain(spec, "stt"):
            if block.provider == "whisper":
                name, options = local.model_name(block), local.whisper_options(block)
                need(name, ("whisper", name, *options.values()),
                     lambda name=name, options=options: whisper(manifest.resolve(name), **options))
        for block in _chain(spec, "llm"):
            if block.provider == "llama":
                name, options = local.model_name(block), local.llama_options(block)
                need(name, ("llama", name, *options.values()),
                     lambda block=block, options=options: llama(local.gguf_path(block), **options))
        for block in _chain(spec, "tts"):
            voice = local.piper_voice_path(block) if block.provider == "piper" else None
            if voice is not None:  # else the agent speaks with espeak-ng: nothing to load
                need(local.model_name(block), ("piper", str(voice)), lambda voice=voice: piper_voice(voice))
        if spec.turn.strategy == "smart_turn":
            need("smart-turn v3", ("smart_turn",), smart_turn_session)
        if spec.memory.enabled and (spec.memory.recall or spec.memory.remember):
            need("minilm embedder", ("embedder",), embedder)
    return list(needs.values())


_SERVICE_MODULES = {kind: f"voxline.integrations.providers.local.{kind}"
                    for kind in ("whisper", "llama", "piper", "smart_turn")}


def _chain(spec: AgentSpec, kind: str) -> list[Any]:
    return [getattr(spec, kind), *getattr(spec, f"{kind}_fallbacks", ())]


def preload(specs: Iterable[AgentSpec]) -> dict[str, float]:
    """Load what ``specs`` need (blocking: run it in a thread). Returns seconds per model."""
    times: dict[str, float] = {}
    for need in model_needs(specs):
        started = time.perf_counter()
        try:
            need.load()
            # The service modules too (~0.4 s of imports), so the first call is quick as well.
            importlib.import_module(_SERVICE_MODULES.get(need.key[0], __name__))
        except (VoxlineError, ImportError) as e:  # a missing model or extra
            log.warning("not preloading %s: %s", need.label, e)
            continue
        times[need.label] = time.perf_counter() - started
    return times


async def apreload(specs: Iterable[AgentSpec]) -> dict[str, float]:
    """``preload`` off the event loop."""
    specs = list(specs)
    started = time.perf_counter()
    times = await asyncio.to_thread(preload, specs)
    log.info("models ready in %.1f s (%s)", time.perf_counter() - started,
             ", ".join(f"{k} {v:.1f} s" for k, v in times.items()) or "none needed")
    return times
