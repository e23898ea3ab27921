"""Heavy local models are loaded once per process; a call's services are light and share them."""

from __future__ import annotations

import gc
import logging
import time
import weakref
from collections import Counter

import pytest

from voxline.integrations.providers.local import shared
from voxline.integrations.providers.local.smart_turn import SharedSmartTurnAnalyzerV3
from voxline.pipelines.builder import Services
from voxline.spec import parse_spec

SPEC = parse_spec({"name": "shared-models", "prompt": "Be brief."})  # whisper, llama, piper, smart turn


@pytest.mark.models
async def test_two_calls_share_every_model_and_each_loads_once(caplog):
    before = Counter(shared.LOADS)  # other tests of this process may have loaded some already
    with caplog.at_level(logging.INFO, logger="voxline.models"):
        times = await shared.apreload([SPEC, SPEC])
    assert {"whisper-base", "qwen2.5-coder-0.5b-instruct", "piper-en-us", "smart-turn v3",
            "silero vad"} <= set(times)
    grown = shared.LOADS - before
    assert all(n == 1 for n in grown.values()), grown
    if grown["whisper"]:
        assert any(r.message.startswith("loaded whisper-base in") for r in caplog.records)
    loads = dict(shared.LOADS)
    await shared.apreload([SPEC])  # again: nothing loads
    assert dict(shared.LOADS) == loads

    started = time.perf_counter()
    first, second = Services.from_spec(SPEC, sample_rate=8000), Services.from_spec(SPEC)
    per_call_ms = (time.perf_counter() - started) * 1000 / 2
    assert per_call_ms < 100, per_call_ms  # ~1 ms here; the models took seconds

    assert first.stt is not second.stt
    assert first.stt._model is second.stt._model
    assert first.tts._voice is second.tts._voice
    assert first.llm._loaded() is second.llm._loaded()
    assert first.stt.sample_rate == 0 and first.stt._init_sample_rate == 8000  # set by the pipeline at start
    turn_a, turn_b = SharedSmartTurnAnalyzerV3(), SharedSmartTurnAnalyzerV3()
    assert turn_a._session is turn_b._session
    assert dict(shared.LOADS) == loads

    # Nothing the shared models hold keeps a finished call's services alive.
    refs = [weakref.ref(s) for s in (first.stt, first.llm, first.tts, turn_a)]
    del first, second, turn_a, turn_b
    gc.collect()
    assert [r() for r in refs] == [None] * len(refs)


def test_a_model_is_loaded_once_when_many_threads_ask_at_once():
    import threading

    loads = []
    barrier = threading.Barrier(4)

    def load():
        loads.append(1)
        time.sleep(0.05)
        return object()

    got = []

    def ask():
        barrier.wait()
        got.append(shared._shared("test-kind", "k", load, "test model"))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1 and len({id(g) for g in got}) == 1


def test_the_thread_cap_bounds_every_models_threads(monkeypatch):
    """VOXLINE_CPU_THREADS (``serve --workers N`` sets cores ÷ N): the cap, never more
    than a model asked for, and "no cap" when unset or not a number."""
    monkeypatch.setenv(shared.THREADS_ENV, "1")
    assert (shared._capped(2), shared._capped(0), shared.thread_cap()) == (1, 1, 1)
    monkeypatch.setenv(shared.THREADS_ENV, "4")
    assert (shared._capped(2), shared._capped(0)) == (2, 4)
    for unset in ("", "many", "-1"):
        monkeypatch.setenv(shared.THREADS_ENV, unset)
        assert (shared._capped(2), shared._capped(0)) == (2, 0)
    monkeypatch.delenv(shared.THREADS_ENV)
    monkeypatch.setattr(shared.os, "cpu_count", lambda: 8)
    shared.share_cores(1)  # one worker: its models keep every core
    assert shared.thread_cap() == 0
    shared.share_cores(4)
    assert shared.thread_cap() == 2
    shared.share_cores(2)  # already set (by hand, or for the workers): left as it is
    assert shared.thread_cap() == 2


@pytest.mark.models
def test_a_capped_piper_voice_runs_on_its_share_of_the_cores(monkeypatch):
    pytest.importorskip("piper")
    from voxline.integrations.providers.local import manifest

    onnx = next(manifest.resolve("piper-en-us").glob("*.onnx"))
    monkeypatch.setenv(shared.THREADS_ENV, "1")
    voice = shared.load_piper_voice(onnx)
    assert voice.session.get_session_options().intra_op_num_threads == 1
    assert sum(len(chunk.audio_int16_bytes) for chunk in voice.synthesize("One moment.")) > 8000
