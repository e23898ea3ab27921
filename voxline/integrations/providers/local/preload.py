"""Load every local model a set of agents needs, once, before the first call.

A server calls ``await apreload(specs)`` at startup: the loads run in a thread, so
the event loop keeps serving health checks meanwhile, and each model logs
``loading whisper whisper-base…`` / ``loaded … in 1.2 s`` on the ``voxline.models``
logger. Calls then build their services on the loaded models in milliseconds. A model
that is missing is skipped here (``voxline check`` reports it; the call that needs it
fails with the same message).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from voxline.errors import ModelMissingError, VoxlineError
from voxline.integrations.providers import local_factories as local
from voxline.integrations.providers.local import manifest, model_cache
from voxline.spec import AgentSpec

log = logging.getLogger("voxline.models")


@dataclass(frozen=True)
class ModelNeed:
    label: str  # what the log says: "whisper-base", "smart-turn v3"
    key: tuple[Any, ...]  # one load per distinct key
    load: Callable[[], Any]


def model_needs(specs: Iterable[AgentSpec]) -> list[ModelNeed]:
    """The distinct local models ``specs`` use, in the order they are first needed."""
    needs: dict[tuple[Any, ...], ModelNeed] = {}

    def need(label: str, key: tuple[Any, ...], load: Callable[[], Any]) -> None:
        needs.setdefault(key, ModelNeed(label, key, load))

    need("silero vad", ("silero",), model_cache.silero)
    for spec in specs:
        if spec.stt.provider == "whisper":
            name, options = local.model_name(spec.stt), local.whisper_options(spec.stt)
            need(name, ("whisper", name, *options.values()),
                 lambda name=name, options=options: model_cache.whisper(manifest.resolve(name), **options))
        if spec.llm.provider == "llama":
            block, options = spec.llm, local.llama_options(spec.llm)
            need(local.model_name(block), ("llama", local.model_name(block), *options.values()),
                 lambda block=block, options=options: model_cache.llama(local.gguf_path(block), **options))
        if spec.tts.provider == "piper":
            voice = local.piper_voice_path(spec.tts)
            if voice is not None:  # else the agent speaks with espeak-ng: nothing to load
                need(local.model_name(spec.tts), ("piper", str(voice)),
                     lambda voice=voice: model_cache.piper_voice(voice))
        if spec.turn.strategy == "smart_turn":
            need("smart-turn v3", ("smart_turn",), model_cache.smart_turn_session)
        if spec.memory.enabled and (spec.memory.recall or spec.memory.remember):
            need("minilm embedder", ("embedder",), model_cache.embedder)
    return list(needs.values())


def preload(specs: Iterable[AgentSpec]) -> dict[str, float]:
    """Load what ``specs`` need (blocking: run it in a thread). Returns seconds per model."""
    times: dict[str, float] = {}
    for need in model_needs(specs):
        started = time.perf_counter()
        try:
            need.load()
        except (ModelMissingError, VoxlineError, ImportError) as e:
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
