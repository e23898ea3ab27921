"""An agent's evaluated prefix outlives its process: the next process reads it from disk
and answers exactly as if it had evaluated it; a damaged file is never restored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from voxline.integrations.providers.local.llama_prefixes import MAGIC, PrefixFiles

# A fresh process: warm the agent up (as a call does), then answer one question.
CHILD = r"""
import asyncio, json
from pipecat.processors.aggregators.llm_context import LLMContext
from voxline.integrations.providers.registry import build_llm
from voxline.spec import parse_spec

spec = parse_spec({"name": "pizza", "llm": {"temperature": 0, "max_tokens": 24},
                   "prompt": "You answer the phone for Luigi's Trattoria, an Italian restaurant. "
                             "We serve pizza and pasta. We open at five. Answer in one short sentence."})

async def main():
    llm = build_llm(spec.llm, max_tool_calls_per_turn=1)
    context = LLMContext(messages=[{"role": "system", "content": spec.system_prompt}])
    cached = await llm.warm_up(context, cached_only=True)  # as a team warms its members first
    cached = llm.prefix_source if cached else None
    ready = await llm.warm_up(context)
    context.add_message({"role": "user", "content": "When do you open?"})
    out = []
    async for chunk in await llm.get_chat_completions(context):
        out.extend(c.delta.content for c in chunk.choices if c.delta.content)
    print(json.dumps({"cached": cached, "ready": ready, "source": llm.prefix_source, "answer": "".join(out)}))

asyncio.run(main())
"""


def _fresh_process(cache: str, **env_: str) -> dict[str, str]:
    env = {**os.environ, "VOXLINE_CACHE_DIR": cache, **env_}
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.models
def test_the_next_process_reads_the_prefix_back_and_answers_the_same(tmp_path: Path):
    first = _fresh_process(str(tmp_path))
    files = list((tmp_path / "llama-prefixes").glob("*.kv"))
    # Not cached yet: the cached-only warm-up evaluates nothing, the full one does.
    assert first["cached"] is None and first["ready"] is True and first["source"] == "evaluated"
    assert len(files) == 1 and first["answer"]

    second = _fresh_process(str(tmp_path))
    assert second == {"cached": "disk", "ready": True, "source": "memory",
                      "answer": first["answer"]}  # greedy: the same words

    # One flipped byte in the state: not restored, evaluated again, written back whole.
    raw = bytearray(files[0].read_bytes())
    raw[-100] ^= 0xFF
    files[0].write_bytes(bytes(raw))
    third = _fresh_process(str(tmp_path))
    assert third == {"cached": None, "ready": True, "source": "evaluated", "answer": first["answer"]}
    assert files[0].read_bytes() != bytes(raw) and _fresh_process(str(tmp_path))["cached"] == "disk"


@pytest.mark.models
def test_off_keeps_prefixes_in_memory_only(tmp_path: Path):
    assert _fresh_process("off", HOME=str(tmp_path))["source"] == "evaluated"
    assert not list(tmp_path.rglob("*.kv"))


def test_a_file_for_other_tokens_or_another_model_is_not_restored(tmp_path: Path):
    files = PrefixFiles(tmp_path, "model-a:1:2:4096:0.3")
    files.save((1, 2, 3), b"state-bytes")
    assert files.load((1, 2, 3)) == bytearray(b"state-bytes")
    assert files.load((1, 2, 4)) is None
    assert PrefixFiles(tmp_path, "model-b:1:2:4096:0.3").load((1, 2, 3)) is None
    # Another model's file under this model's name (a copied or swapped file).
    other = PrefixFiles(tmp_path, "model-b:1:2:4096:0.3")
    other.save((1, 2, 3), b"theirs")
    theirs = next(p for p in tmp_path.glob("*.kv") if p != files._path((1, 2, 3)))
    files._path((1, 2, 3)).write_bytes(theirs.read_bytes())
    assert files.load((1, 2, 3)) is None
    # Not ours at all, or cut short.
    files._path((1, 2, 3)).write_bytes(b"GARBAGE" * 10)
    assert files.load((1, 2, 3)) is None
    files.save((1, 2, 3), b"state-bytes")
    whole = files._path((1, 2, 3)).read_bytes()
    assert whole.startswith(MAGIC)
    files._path((1, 2, 3)).write_bytes(whole[:-3])
    assert files.load((1, 2, 3)) is None
    assert not list(tmp_path.glob("*.tmp"))


def test_the_folder_is_pruned_oldest_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from voxline.integrations.providers.local import llama_prefixes

    monkeypatch.setattr(llama_prefixes, "MAX_BYTES", 2500)
    files = PrefixFiles(tmp_path, "m")
    for i in range(4):
        files.save((i,), bytes(1000))
        os.utime(files._path((i,)), (1000 + i, 1000 + i))
    files.save((9,), bytes(1000))
    kept = {p.name for p in tmp_path.glob("*.kv")}
    assert kept == {files._path((9,)).name, files._path((3,)).name}


SHARED = r"""
import asyncio, json
from pipecat.processors.aggregators.llm_context import LLMContext
from voxline.integrations.providers.registry import build_llm
from voxline.pipelines.builder import preamble_messages
from voxline.spec import parse_spec

spec = parse_spec({"name": "pizza", "llm": {"temperature": 0, "max_tokens": 24},
                   "prompt": "You answer the phone for Luigi's Trattoria. Answer in one short sentence.",
                   "examples": [{"caller": "Do you have pizza?", "say": "Yes, we bake pizza every night."}]})

async def main():
    out = {}
    for caller, memory, question in (
            ("anna", "What you know about this caller: Anna always asks for the window table.",
             "Which table do I usually ask for?"),
            ("bob", "What you know about this caller: Bob is allergic to nuts.", "What am I allergic to?")):
        llm = build_llm(spec.llm, max_tool_calls_per_turn=1)
        messages = preamble_messages(spec.system_prompt, spec, [memory], llm)
        roles = [m["role"] for m in messages]
        context = LLMContext(messages=messages)
        await llm.warm_up(context)
        context.add_message({"role": "user", "content": question})
        said = []
        async for chunk in await llm.get_chat_completions(context):
            said.extend(c.delta.content for c in chunk.choices if c.delta.content)
        out[caller] = {"source": llm.prefix_source, "roles": roles,
                       "answer": "".join(said)}
    print(json.dumps(out))

asyncio.run(main())
"""


@pytest.mark.models
def test_callers_with_their_own_memories_share_the_agents_prefix(tmp_path: Path):
    env = {**os.environ, "VOXLINE_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", SHARED], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    # The caller's memory comes after the agent's examples, as a system message of its own.
    assert out["anna"]["roles"] == ["system", "user", "assistant", "system"]
    assert out["anna"]["source"] == "evaluated" and out["bob"]["source"] == "memory"
    assert len(list((tmp_path / "llama-prefixes").glob("*.kv"))) == 1  # one prefix for both callers
    # Each still knows their own caller.
    assert "window" in out["anna"]["answer"].lower() and "nut" in out["bob"]["answer"].lower(), out
