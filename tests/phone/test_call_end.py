"""Every call ends, promptly and with the right reason, whatever ends it; and what the
caller said or dialled from never reaches the server's log."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator

import pytest
from pipecat.frames.frames import ErrorFrame, Frame

from voxline.pipelines.builder import Services
from voxline.spec import AgentSpec

from .kit import RATE, AgentScript, ScriptedLLM, ScriptedSTT, SpeechTTS, silence, speech
from .test_call_e2e import wait_for

SID = "CA" + "e" * 32
CALLER = "+15557654321"
QUESTION = "When are you open?"
ANSWER = "We open at nine every morning."


@pytest.fixture
def script() -> AgentScript:
    return AgentScript(transcripts=[QUESTION], reply=lambda _: ANSWER)


async def greeted(phone):  # type: ignore[no-untyped-def]
    call = await phone.incoming(SID, from_=CALLER)
    await call.connect()
    assert await wait_for(lambda: len(call.played) > 2000, 10)
    return call


async def test_stop_ends_the_call_at_once(phone) -> None:
    call = await greeted(phone)
    t0 = time.monotonic()
    await call.send_stop()  # the caller hung up; closing the socket is left to the server
    assert await wait_for(call.closed.is_set, 5)
    closed_after = time.monotonic() - t0
    await call.close()
    assert closed_after < 2.0, closed_after  # not the idle timer, not the max call length
    record = await phone.records.wait_closed(SID, 5)
    assert (record.status, record.end_reason) == ("completed", "caller_hung_up")
    assert SID not in phone.app.state.host.calls


@pytest.mark.parametrize("how", ["abort", "close"])
async def test_a_stream_gone_without_stop_is_dropped(phone, how) -> None:
    call = await greeted(phone)
    await (call.drop() if how == "abort" else call.close())  # TCP gone / websocket closed, no `stop`
    record = await phone.records.wait_closed(SID, 10)
    assert (record.status, record.end_reason) == ("dropped", "dropped")
    assert record.transport_stats["media_in"] > 0


# -- failures ---------------------------------------------------------------------------
class BrokenSTT(ScriptedSTT):
    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        raise RuntimeError("the speech service fell over")
        yield None  # (a generator)


class FatalSTT(ScriptedSTT):
    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        yield ErrorFrame("the speech service is gone for good", fatal=True)


def with_stt(stt: type[ScriptedSTT]):  # type: ignore[no-untyped-def]
    def make(spec: AgentSpec, sample_rate: int = RATE) -> Services:
        return Services(stt=stt([]), llm=ScriptedLLM(lambda _: ANSWER), tts=SpeechTTS())

    return make


def no_services(spec: AgentSpec, sample_rate: int = RATE) -> Services:
    raise RuntimeError("no model for this agent")


@pytest.mark.parametrize("app_options", [{"services": with_stt(BrokenSTT)}])
async def test_a_call_whose_stt_fails_still_ends_with_its_row_closed(phone) -> None:
    call = await greeted(phone)
    call.say(speech(QUESTION) + silence(0.6))
    await call.wait_said()
    assert not await wait_for(call.closed.is_set, 2)  # a passing error: the line stays up
    await call.stop()
    record = await phone.records.wait_closed(SID, 10)
    assert (record.status, record.end_reason) == ("completed", "caller_hung_up")
    assert phone.app.state.host.active_calls == 0


@pytest.mark.filterwarnings("ignore:`ErrorFrame.fatal` is deprecated")
@pytest.mark.parametrize("app_options", [{"services": with_stt(FatalSTT)}])
async def test_a_fatal_pipeline_error_ends_the_call_as_failed(phone) -> None:
    call = await greeted(phone)
    call.say(speech(QUESTION) + silence(0.6))
    await call.wait_said()
    assert await wait_for(call.closed.is_set, 5)  # the server ends the stream (and so the call)
    await call.close()
    record = await phone.records.wait_closed(SID, 10)
    assert (record.status, record.end_reason) == ("failed", "pipeline_error")
    assert phone.app.state.host.active_calls == 0


@pytest.mark.parametrize("app_options", [{"services": no_services}])
async def test_a_call_that_cannot_be_built_is_closed_as_failed(phone, server_errors) -> None:
    call = await phone.incoming(SID, from_=CALLER)
    await call.connect()
    assert await wait_for(call.closed.is_set, 5)  # the server ends the stream
    await call.close()
    assert call.events("media") == []
    record = await phone.records.wait_closed(SID, 5)
    assert (record.status, record.end_reason) == ("failed", "failed")
    assert phone.app.state.host.active_calls == 0
    assert any("call failed" in line for line in server_errors)  # reported, with its cause


# -- redaction --------------------------------------------------------------------------
async def test_caller_numbers_and_words_stay_out_of_the_log(phone, server_log) -> None:
    call = await greeted(phone)
    call.say(speech(QUESTION) + silence(0.6))
    await call.wait_said()
    played = len(call.played)
    assert await wait_for(lambda: len(call.played) > played + 8000, 10)  # the answer plays
    await call.send_dtmf("7")
    await call.stop()
    record = await phone.records.wait_closed(SID, 10)
    await phone.app.state.host.settle()
    assert any(t.role == "user" and t.text == QUESTION for t in record.turns)  # (it was heard)
    text = server_log.getvalue()
    assert SID in text and "inbound call from ***21" in text  # the log did run, at INFO
    for secret in (CALLER, CALLER[1:], CALLER[2:], QUESTION, "When are you", ANSWER, "open at nine"):
        assert secret not in text, (secret, text)
