"""``voxline simulate``: a scripted caller calls an agent through the real pipeline.

The caller speaks at real-time pace into the agent's VAD, turn detection, STT, LLM
and TTS; what the agent plays back is transcribed again by the local Whisper, so the
report shows what the caller actually heard, and latencies are measured at the
caller's ear (``voice_to_voice``: end of the caller's speech → first agent audio).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from voxline.audio import read_wav, synthesize, transcribe_async
from voxline.pipelines.builder import Services
from voxline.pipelines.scenario import Expect, Scenario, Turn
from voxline.pipelines.session import CallSession
from voxline.processors.call_log import TurnRecord
from voxline.spec import AgentSpec, load_spec
from voxline.transports.simulated import CallerLine, SimulatedTransport

SAMPLE_RATE = 16000
QUIET_SECS = 1.2  # the agent is done answering after this long with nothing in flight
SPEAK_SLACK_SECS = 5.0  # beyond its own length, how long caller speech may take to send


@dataclass
class TurnReport:
    agent: str = ""  # the agent that answered (after a handoff: the one handed to)
    language: str = ""  # the language it answered in
    caller_said: str = ""
    agent_heard: str = ""
    agent_said: str = ""
    caller_heard: str = ""
    interrupted: bool = False
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class Report:
    agent: str
    passed: bool = True
    failures: list[str] = field(default_factory=list)
    greeting_heard: str = ""
    end_reason: str = ""
    turns: list[TurnReport] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Simulation:
    """Drives one scenario against one call session."""

    def __init__(self, scenario: Scenario, spec: AgentSpec | None = None,
                 services: Services | None = None, session_kwargs: dict[str, Any] | None = None,
                 listen: bool = True):
        # listen=False skips transcribing what the caller heard (tests that only need
        # what the agent said save a Whisper pass per turn).
        self.listen = listen
        self.scenario = scenario
        self.spec = spec or load_spec(scenario.agent)
        self.line = CallerLine(sample_rate=SAMPLE_RATE)
        self.session = CallSession(
            self.spec, SimulatedTransport(self.line), caller_id=scenario.caller.id,
            services=services, audio_in_sample_rate=SAMPLE_RATE, audio_out_sample_rate=SAMPLE_RATE,
            **(session_kwargs or {}),
        )
        self.report = Report(agent=self.spec.name)
        self._windows: dict[tuple[int, str], tuple[Any, str, float, float]] = {}
        self._to_transcribe: list[tuple[TurnReport, bytes]] = []

    async def _wait_quiet(self, since: float, timeout: float) -> None:
        """Wait until the agent has answered (or given up) and nothing is in flight."""
        log, deadline = self.session.log, time.monotonic() + timeout
        while time.monotonic() < deadline and not self.session.ended:
            idle_for = time.monotonic() - max(log.last_activity, since)
            if not log.busy() and not self.line.speaking and idle_for >= QUIET_SECS:
                return
            await asyncio.sleep(0.05)

    async def _wait_agent_speaking(self, since: float, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.session.ended:
            if self.line.first_speech_after(since) is not None:
                return
            await asyncio.sleep(0.02)

    async def _speak(self, pcm: bytes) -> float:
        """Play ``pcm`` into the line; returns when it was sent, or when the call ended
        (a call that hung up stops reading the line, and nothing would ever send it)."""
        said = asyncio.ensure_future(self.line.say(pcm).wait())
        ended = asyncio.ensure_future(self.session.wait_ended())
        secs = len(pcm) / (2 * self.line.sample_rate) + SPEAK_SLACK_SECS
        try:
            await asyncio.wait({said, ended, self._call}, timeout=secs, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (said, ended):
                task.cancel()
        return self.line.last_speech_sent_at or time.monotonic()

    def _caller_audio(self, turn: Turn) -> tuple[str, bytes]:
        if turn.audio is not None:
            return "", read_wav(turn.audio, SAMPLE_RATE)
        text = turn.say or turn.barge_in or ""
        return text, synthesize(text, SAMPLE_RATE)

    async def run(self) -> Report:
        call = self._call = asyncio.create_task(self.session.run())
        try:
            # Bounded: each turn waits at most its timeout, but a scenario as a whole
            # must end even if a wait we did not foresee never returns.
            await asyncio.wait_for(self._conversation(), self._deadline_secs())
        except TimeoutError:
            self.report.failures.append("the scenario did not finish in time")
        finally:
            await self.session.end("caller_hangup")
            with contextlib.suppress(asyncio.CancelledError):
                result = await asyncio.wait_for(call, 30)
                self.report.end_reason = result.end_reason
            if not call.done():
                call.cancel()
        self.report.passed = not self.report.failures
        return self.report

    def _deadline_secs(self) -> float:
        per_turn = self.scenario.answer_timeout_secs * 2 + SPEAK_SLACK_SECS
        speech = sum((t.silence or 0) + 15 for t in self.scenario.turns)
        return 60 + per_turn * (len(self.scenario.turns) + 1) + speech

    async def _conversation(self) -> None:
        turns, timeout = self.scenario.turns, self.scenario.answer_timeout_secs
        # Loading models and starting the pipeline can take a while on a busy machine.
        started = asyncio.ensure_future(self.session.started.wait())
        await asyncio.wait({started, self._call}, timeout=timeout,
                           return_when=asyncio.FIRST_COMPLETED)
        if not started.done():
            started.cancel()
            self.report.failures.append("the call did not start")
            return
        start = time.monotonic()
        await self._wait_quiet(start, timeout)
        self._hear(self.report, "greeting_heard", start)
        # Checked once all turns are played: an interrupted answer is only known later.
        checks: list[tuple[int, Expect | None, TurnReport, bool]] = []
        for i, turn in enumerate(turns):
            if self.session.ended:
                self.report.failures.append(f"turn {i + 1}: the call had already ended")
                break
            next_is_barge_in = i + 1 < len(turns) and turns[i + 1].barge_in is not None
            report = await self._play_turn(turn, timeout, next_is_barge_in)
            self.report.turns.append(report)
            if self._interrupted_turn is not None:
                self._fill(*self._interrupted_turn)
                self._interrupted_turn = None
            checks.append((i + 1, turn.expect, report, self.session.end_reason is not None))
        await self._transcribe_heard()
        for n, expect, report, ended in checks:
            self._check(n, expect, report, ended)

    async def _play_turn(self, turn: Turn, timeout: float, stop_early: bool) -> TurnReport:
        log = self.session.log
        first_record = len(log.turns)
        report = TurnReport()
        if turn.silence is not None:
            began = time.monotonic()
            await self.session.log.mark_caller_silent()
            with contextlib.suppress(TimeoutError):  # a silence lasts until the call ends, at most
                await asyncio.wait_for(self.session.wait_ended(), turn.silence)
            spoke_at = began
        else:
            report.caller_said, pcm = self._caller_audio(turn)
            if turn.barge_in is not None:
                await self._wait_agent_speaking(self._last_speech_end, timeout)
                await asyncio.sleep(turn.barge_in_after_secs)
                await self._finish_interrupted_turn()
            spoke_at = await self._speak(pcm)
            if turn.audio is not None:
                self._to_transcribe.append((report, pcm))
        self._last_speech_end = spoke_at
        if stop_early:
            await self._wait_agent_speaking(spoke_at, timeout)
        else:
            await self._wait_quiet(spoke_at, timeout)
        records = log.turns[first_record:]
        self._fill(report, records)
        self._hear(report, "caller_heard", spoke_at)
        self._previous = (report, records, spoke_at)
        first_audio = self.line.first_speech_after(spoke_at)
        if first_audio is not None and turn.silence is None:
            report.latency_ms["voice_to_voice"] = round((first_audio - spoke_at) * 1000, 1)
        return report

    _last_speech_end: float = 0.0
    _previous: tuple[TurnReport, list[TurnRecord], float] | None = None

    def _hear(self, report: TurnReport | Report, name: str, since: float) -> None:
        """What the caller heard from ``since`` until now is transcribed once the call is
        over: transcribing during the call would keep the scripted caller from keeping
        time (an idle timer runs on while Whisper works) and take the agent's CPU."""
        self._windows[(id(report), name)] = (report, name, since, time.monotonic())

    async def _transcribe_heard(self) -> None:
        for report, pcm in self._to_transcribe:
            report.caller_said = await transcribe_async(pcm)
        for report, name, since, until in self._windows.values():
            setattr(report, name, await self._heard(since, until))

    async def _heard(self, since: float, until: float) -> str:
        if not self.listen:
            return ""
        return await transcribe_async(
            b"".join(r.pcm for r in self.line.received if since <= r.at <= until)
        )

    async def _finish_interrupted_turn(self) -> None:
        """The caller cuts in now: the previous answer is what was played until this moment."""
        if self._previous is None:
            return
        report, records, spoke_at = self._previous
        self._hear(report, "caller_heard", spoke_at)
        self._interrupted_turn = (report, records)

    _interrupted_turn: tuple[TurnReport, list[TurnRecord]] | None = None

    @staticmethod
    def _fill(report: TurnReport, records: list[TurnRecord]) -> None:
        report.agent = next((r.agent for r in reversed(records) if r.agent), report.agent)
        report.language = next((r.language for r in reversed(records) if r.language), report.language)
        report.agent_heard = " ".join(r.user_text for r in records if r.user_text).strip()
        report.agent_said = " ".join(r.agent_text for r in records if r.agent_text).strip()
        report.interrupted = any(r.interrupted for r in records)
        report.tool_calls = [
            {"name": c.name, "arguments": c.arguments, "result": c.result, "error": c.error}
            for r in records for c in r.tool_calls
        ]
        for r in records:
            for key in ("stt", "llm_ttft", "tts_ttfb"):
                if key in r.latency_ms and key not in report.latency_ms:
                    report.latency_ms[key] = r.latency_ms[key]

    def _check(self, n: int, expect: Expect | None, report: TurnReport, ended: bool) -> None:
        if expect is None:
            return
        fail = self.report.failures.append
        # Guardrail events are recorded beside tool calls; they are not the agent's tools.
        tools = [c for c in report.tool_calls if not c["name"].startswith("guardrail:")]
        called = [c["name"] for c in tools if not c["error"]]
        wanted: list[str] = []
        if expect.tool_called is not None:
            wanted = [expect.tool_called] if isinstance(expect.tool_called, str) else expect.tool_called
            for name in wanted:
                if name not in called:
                    fail(f"turn {n}: expected tool {name!r} to be called; called {called or 'none'}")
        if expect.tool_args is not None:
            made = [c["arguments"] for c in tools if not c["error"]
                    and (expect.tool_called is None or c["name"] in wanted)]
            if not any(all(any(v.lower() in str(args.get(k, "")).lower() for v in values)
                           for k, values in expect.tool_args.items()) for args in made):
                fail(f"turn {n}: expected arguments like {expect.tool_args}; got {made or 'no call'}")
        if expect.no_tool_called and tools:
            fail(f"turn {n}: expected no tool call; got {[c['name'] for c in tools]}")
        if expect.says_any is not None:
            said = f"{report.agent_said} {report.caller_heard}".lower()
            if not any(s.lower() in said for s in expect.says_any):
                fail(f"turn {n}: expected the agent to say any of {expect.says_any}; "
                     f"it said {report.agent_said!r}")
        if expect.says_none is not None:
            said = f" {report.agent_said} ".lower()
            bad = [s for s in expect.says_none if re.search(rf"\b{re.escape(s.lower())}\b", said)]
            if bad:
                fail(f"turn {n}: expected the agent not to say {bad}; it said {report.agent_said!r}")
        if expect.hears_any is not None:
            heard = report.caller_heard.lower()
            if not any(s.lower() in heard for s in expect.hears_any):
                fail(f"turn {n}: expected the caller to hear any of {expect.hears_any}; "
                     f"they heard {report.caller_heard!r}")
        if expect.agent is not None and report.agent != expect.agent:
            fail(f"turn {n}: expected agent {expect.agent!r} to answer; {report.agent or 'no agent'!r} did")
        if expect.language is not None and report.language != expect.language:
            fail(f"turn {n}: expected an answer in {expect.language!r}; it was in {report.language or 'none'!r}")
        if expect.interrupted is not None and report.interrupted != expect.interrupted:
            fail(f"turn {n}: expected interrupted={expect.interrupted}, got {report.interrupted}")
        if expect.call_ended is not None and ended != expect.call_ended:
            fail(f"turn {n}: expected call_ended={expect.call_ended}, got {ended}")


async def simulate(scenario: Scenario, **kwargs: Any) -> Report:
    return await Simulation(scenario, **kwargs).run()
