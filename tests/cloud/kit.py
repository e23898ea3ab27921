"""Whole calls on the cloud providers' loopback fakes, recorded in a real call store.

    async with Vendors() as v:                      # every fake on 127.0.0.1:0
        spec = agent(stt=v.block("deepgram"), llm=v.block("openai"), tts=v.block("elevenlabs"))
        call = await run_call(spec, ["When do you open?"], db=tmp_path / "calls.db")
        call.show["turns"]                          # what `voxline calls show --json` prints

The caller speaks (synthesized speech, real time) into Silero VAD; the fakes script
what the vendors recognise and answer; the TTS fakes return real PCM with timings.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from tests.fakes.anthropic_api import FakeAnthropic, MessageReply
from tests.fakes.deepgram import FakeDeepgram
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.fakes.openai_api import ChatReply, FakeOpenAI
from voxline.cli import app
from voxline.pipelines.builder import Services
from voxline.pipelines.call_memory import MemoryRuntime, simulate_remembered
from voxline.pipelines.scenario import Scenario, Turn
from voxline.pipelines.simulate import Report
from voxline.spec import AgentSpec, parse_spec

KEYS = {"OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "ak-test", "DEEPGRAM_API_KEY": "dg-test",
        "ELEVENLABS_API_KEY": "xi-test"}
VOICE = "21m00Tcm4TlvDq8ikWAM"
SAID = "When do you open?"
ANSWER = "We open at noon. The kitchen closes at ten."


class Vendors:
    """One fake per vendor, each scripted to recognise ``SAID`` and answer ``ANSWER``."""

    def __init__(self, heard: str = SAID, answer: str = ANSWER, copies: int = 20,
                 deepgram_interims: bool = False):
        # The same words for every request: probes and retries take their share too.
        self.deepgram = FakeDeepgram([heard] * copies, interim_every_ms=300 if deepgram_interims else None)
        self.openai = FakeOpenAI(transcripts=[heard] * copies)
        self.openai.fallback = ChatReply(text=answer, prompt_tokens=40)
        self.anthropic = FakeAnthropic()
        self.anthropic.fallback = MessageReply(text=answer, input_tokens=40)
        self.elevenlabs = FakeElevenLabs()
        self.all = [self.deepgram, self.openai, self.anthropic, self.elevenlabs]

    async def __aenter__(self) -> Vendors:
        for fake in self.all:
            await fake.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for fake in self.all:
            await fake.stop()

    def fake(self, provider: str) -> Any:
        return getattr(self, provider)

    def block(self, provider: str, **extra: Any) -> dict[str, Any]:
        """A spec block pointing at ``provider``'s fake (model and voice left to defaults)."""
        url = {"openai": f"{self.openai.url}/v1", "deepgram": self.deepgram.url,
               "anthropic": self.anthropic.url, "elevenlabs": self.elevenlabs.url}[provider]
        block: dict[str, Any] = {"provider": provider, "base_url": url}
        if provider == "elevenlabs":
            block["voice"] = VOICE
        return {**block, **extra}


def agent(*, stt: Any, llm: Any, tts: Any, greeting: str | None = None, **extra: Any) -> AgentSpec:
    return parse_spec({
        "name": "front-desk", "prompt": "You answer the phone for a small restaurant.",
        "greeting": greeting, "turn": {"strategy": "silence", "stop_secs": 0.3},
        "vad": {"stop_secs": 0.2}, "stt": stt, "llm": llm, "tts": tts,
        "idle": {"reprompt_after_secs": 60}, **extra,
    })


def heal(fake: Any) -> None:
    """Clear every fault the fake was given."""
    f = fake.faults
    f.status, f.times, f.first_byte_delay = None, None, 0.0
    f.stall_after_first_chunk = f.close_mid_stream = False
    f.release()


@dataclass
class Call:
    report: Report
    show: dict[str, Any]  # `voxline calls show ID --json`
    text: str  # `voxline calls show ID`
    services: Services

    @property
    def agent_turns(self) -> list[dict[str, Any]]:
        return [t for t in self.show["turns"] if t["role"] == "assistant" and t["text"]]


def calls_show(db: Path, call_id: str | None = None) -> tuple[dict[str, Any], str]:
    """What the CLI prints for the newest call (or ``call_id``): JSON, then text."""
    runner = CliRunner()
    if call_id is None:
        listed = runner.invoke(app, ["calls", "list", "--json", "--database-url", str(db)])
        assert listed.exit_code == 0, listed.output
        call_id = json.loads(listed.output)[0]["id"]
    shown = runner.invoke(app, ["calls", "show", call_id, "--json", "--database-url", str(db)])
    assert shown.exit_code == 0, shown.output
    text = runner.invoke(app, ["calls", "show", call_id, "--database-url", str(db)])
    return json.loads(shown.output), text.output


async def run_call(spec: AgentSpec, said: list[str], *, db: Path, services: Services | None = None,
                   between: Callable[[int, Services], Any] | None = None,
                   answer_timeout: float = 20.0) -> Call:
    """One simulated call with the call record in ``db``. ``between(i, services)`` runs
    after caller turn ``i`` (awaited if it is a coroutine): heal a fake, wait for a probe."""
    services = services or Services.from_spec(spec)
    runtime = await MemoryRuntime.open(str(db))
    turns = [Turn(say=s) for s in said]
    try:
        if between is None:
            report = await simulate_remembered(
                Scenario(agent=Path("front-desk.yaml"), turns=turns, answer_timeout_secs=answer_timeout),
                runtime=runtime, spec=spec, services=services, listen=False, remember=False, recall=False)
        else:
            report = await _with_pauses(spec, turns, services, runtime, between, answer_timeout)
    finally:
        await runtime.close()
    show, text = await asyncio.to_thread(calls_show, db)
    return Call(report, show, text, services)


async def _with_pauses(spec: AgentSpec, turns: list[Turn], services: Services, runtime: MemoryRuntime,
                       between: Callable[[int, Services], Any], answer_timeout: float) -> Report:
    """The simulator with a hook between caller turns (it otherwise runs them back to back)."""
    from voxline.pipelines import simulate

    original = simulate.Simulation._play_turn
    played = {"n": 0}

    async def play(self: Any, turn: Turn, timeout: float, stop_early: bool) -> Any:
        if played["n"]:
            result = between(played["n"] - 1, services)
            if asyncio.iscoroutine(result):
                await result
        played["n"] += 1
        return await original(self, turn, timeout, stop_early)

    simulate.Simulation._play_turn = play  # type: ignore[method-assign]
    try:
        return await simulate_remembered(
            Scenario(agent=Path("front-desk.yaml"), turns=turns, answer_timeout_secs=answer_timeout),
            runtime=runtime, spec=spec, services=services, listen=False, remember=False, recall=False)
    finally:
        simulate.Simulation._play_turn = original  # type: ignore[method-assign]


async def wait_healthy(chain: Any, index: int = 0, timeout: float = 20.0) -> None:
    """Until the chain's member ``index`` was probed healthy and taken back."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        member = chain.members[index]
        if member.healthy and chain.active is member:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{chain.members[index]} was not taken back within {timeout} s")


def spoken(call: Call) -> list[str]:
    """What the caller was played of each agent turn (the stored `heard` text)."""
    return [t.get("heard") or t["text"] for t in call.agent_turns]


class Door:
    """A port that refuses connections until ``open()``; then it forwards to ``target``
    (a fake's port). Stands for a provider that is unreachable, then comes back."""

    def __init__(self, target_port: int):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.target_port = target_port
        self._server: asyncio.base_events.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)

    async def close(self) -> None:
        for task in list(self._pipes):
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        for task in (asyncio.ensure_future(pipe(reader, up_writer)), asyncio.ensure_future(pipe(up_reader, writer))):
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)
