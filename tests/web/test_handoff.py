"""A web visitor handed to a person sees that a person will call back.

``builtin:transfer_to_human`` on a web call POSTs the request (summary and transcript,
HMAC-signed) to the target's webhook; once it is delivered, the widget is told over
the call's RTVI channel (a ``server-message`` with ``{"voxline": "handoff", ...}``)
and shows a notice, marks its element ``data-voxline-handoff="requested"`` and
dispatches a ``voxline:handoff`` event. A request that could not be delivered tells
the widget nothing.

Unit level: the payload, and what goes out on the wire from a Pipecat pipeline with
the widget's RTVI processor and observer. In a browser: headless Chromium with
recorded speech as the microphone, an LLM that speaks the OpenAI chat wire protocol
on loopback and calls the tool, and a webhook receiver on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pipecat.frames.frames import EndFrame, Frame, OutputTransportMessageUrgentFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection
from pipecat.workers.runner import WorkerRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.openai_chat import FakeOpenAIChat, Reply
from tests.fakes.twilio_loopback import serve
from tests.vendors.harness import Collect
from voxline.errors import ToolError
from voxline.integrations.providers.registry import build_llm
from voxline.integrations.tools.http import verify
from voxline.orchestration.human import HumanHandoff
from voxline.pipelines.builder import Services
from voxline.processors.call_log import CallLog, TurnRecord
from voxline.spec import AgentSpec, parse_spec
from voxline.transports.web.line import WebCall
from voxline.transports.web.rtvi import handoff_message, public_observer_params
from voxline.web_settings import WebSettings

from .kit import (
    CAPTIONS,
    RATE,
    Script,
    ScriptedSTT,
    SpeechTTS,
    agent_data,
    chromium,
    embed_page,
    mic_wav,
    site_app,
    wait_for,
    web_server,
    with_web,
)

SECRET_ENV = "VOXLINE_TEST_HANDOFF_SECRET"
SAID = "I would like to talk to a person about my refund"


# -- the payload ------------------------------------------------------------------------
def test_the_handoff_message_carries_the_specs_words_only() -> None:
    assert handoff_message("requested", target="front-desk", message="A person will call you back.") == {
        "voxline": "handoff", "status": "requested", "target": "front-desk",
        "message": "A person will call you back."}
    odd = handoff_message("requested", target="desk\u2028\x00" + "x" * 100, message=" Call\x1b[2J back. " * 100)
    assert odd["target"] == "desk" + "x" * 60 and len(odd["message"]) == 400
    assert "\x1b" not in odd["message"] and "\u2028" not in odd["target"]
    with pytest.raises(ValueError, match="unknown handoff status"):
        handoff_message("transferred", target="front-desk", message="")


# -- on the wire, from a Pipecat pipeline with the widget's RTVI ------------------------
class Wire(Collect):
    """The end of the pipeline, where the output transport would be: what goes to the page."""

    def __init__(self) -> None:
        super().__init__(FrameDirection.DOWNSTREAM)

    @property
    def sent(self) -> list[dict[str, Any]]:
        return [f.message for f in self.of(OutputTransportMessageUrgentFrame)]

    def server_messages(self) -> list[Any]:
        return [m["data"] for m in self.sent if m.get("type") == "server-message"]


@contextlib.asynccontextmanager
async def widget_pipeline(call: WebCall) -> AsyncIterator[tuple[PipelineWorker, Wire]]:
    wire = Wire()
    worker = PipelineWorker(Pipeline([wire]), enable_rtvi=True, rtvi_processor=call.rtvi,
                            rtvi_observer_params=public_observer_params(), cancel_on_idle_timeout=False)
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def _started(_worker: PipelineWorker, _frame: Frame) -> None:
        started.set()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    run = asyncio.ensure_future(runner.run())
    try:
        await asyncio.wait_for(started.wait(), 10)
        yield worker, wire
    finally:
        await worker.queue_frame(EndFrame())
        await asyncio.wait_for(run, 10)


class Session:
    """What HumanHandoff reads of a call session; its worker is the real pipeline's."""

    def __init__(self, worker: PipelineWorker) -> None:
        self.worker = worker
        self.log = CallLog(agent="restaurant")
        self.log.turns.append(TurnRecord(index=1, agent="restaurant", user_text="<b>My pizza</b> was cold.",
                                         agent_text="I'm sorry to hear that."))
        self.call_id, self.caller_id, self.incoming = "web-call-1", None, None


def _handoff_spec(webhook: str) -> AgentSpec:
    return parse_spec({"name": "restaurant", "prompt": "x", "humans": {
        "requested": "I've passed it on: a person will call you back.",
        "targets": {"front-desk": {"webhook": webhook, "secret_env": SECRET_ENV}}}})


def _receiver(status: int, got: list[tuple[dict[str, Any], bool]]) -> Starlette:
    async def hook(request: Request) -> Response:
        body = await request.body()
        got.append((json.loads(body), verify("k", body, request.headers.get("x-voxline-signature", ""))))
        return Response(status_code=status)

    return Starlette(routes=[Route("/handoff", hook, methods=["POST"])])


async def test_the_widget_is_told_once_the_request_is_delivered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "k")
    got: list[tuple[dict[str, Any], bool]] = []
    call = WebCall.create("web-call-1")
    async with serve(_receiver(202, got)) as url, widget_pipeline(call) as (worker, wire):
        spec = _handoff_spec(f"{url}/handoff")
        result = await HumanHandoff(spec, Session(worker), line=call, channel="web").run({"reason": "a refund"})
        await wire.wait_for(OutputTransportMessageUrgentFrame,
                            lambda f: f.message.get("type") == "server-message", 5)
    assert result["status"] == "requested" and result["target"] == "front-desk"
    assert wire.server_messages() == [{"voxline": "handoff", "status": "requested", "target": "front-desk",
                                       "message": "I've passed it on: a person will call you back."}]
    assert wire.sent[-1]["label"] == "rtvi-ai"
    body, signed = got[0]
    assert signed and body["reason"] == "a refund" and "cold" in body["summary"]
    # Nothing the caller said reaches the page.
    assert "pizza" not in json.dumps(wire.sent) and "refund" not in json.dumps(wire.sent)
    assert call.stats()["handoffs"] == 1


@pytest.mark.parametrize("status", [400, 503])
async def test_a_request_that_was_not_delivered_tells_the_widget_nothing(
        monkeypatch: pytest.MonkeyPatch, status: int) -> None:
    monkeypatch.setenv(SECRET_ENV, "k")
    got: list[tuple[dict[str, Any], bool]] = []
    call = WebCall.create("web-call-2")
    async with serve(_receiver(status, got)) as url, widget_pipeline(call) as (worker, wire):
        with pytest.raises(ToolError, match="could not be delivered"):
            await HumanHandoff(_handoff_spec(f"{url}/handoff"), Session(worker), line=call, channel="web").run({})
        await asyncio.sleep(0.2)
    assert len(got) == (1 if status == 400 else 3)  # a 5xx is retried, a 4xx is not
    assert wire.server_messages() == [] and "handoffs" not in call.stats()


# -- in a browser -----------------------------------------------------------------------
ROOT = "document.querySelector('#voxline-widget')"
NOTICE = f"{ROOT}.shadowRoot.querySelector('.handoff')"
LISTEN = """<script>
window.handoffs = [];
document.addEventListener("voxline:handoff", (e) => window.handoffs.push({ id: e.target.id, detail: e.detail }));
</script>"""


def _agent(llm_url: str, webhook: str, tmp_path: Path) -> AgentSpec:
    data = agent_data(Script(greeting="Hello, this is the restaurant.", memory=False))
    data["llm"] = {"provider": "openai_compatible", "base_url": f"{llm_url}/v1", "model": "fake-model"}
    data["tools"].append({"name": "transfer_to_human", "handler": "builtin:transfer_to_human"})
    data["humans"] = {"targets": {"front-desk": {"webhook": webhook, "secret_env": SECRET_ENV}}}
    return parse_spec(data, base_dir=tmp_path)


def _services(spec: AgentSpec, sample_rate: int = RATE) -> Services:
    return Services(stt=ScriptedSTT([SAID]), llm=build_llm(spec.llm, max_tool_calls_per_turn=3), tts=SpeechTTS())


@pytest.mark.browser
@pytest.mark.parametrize("webhook_status", [202, 400])
async def test_a_web_visitor_handed_to_a_person_sees_a_callback_notice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server_errors: list[str], webhook_status: int) -> None:
    monkeypatch.setenv(SECRET_ENV, "k")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    delivered = webhook_status < 300
    got: list[tuple[dict[str, Any], bool]] = []
    llm = FakeOpenAIChat(replies=[Reply(tool="transfer_to_human", arguments=json.dumps({"reason": "a refund"}))],
                         fallback=Reply(text="Is there anything else?"))
    mic = mic_wav(tmp_path / "mic.wav", (4.0, "0880"), (8.0, None))  # speaks after the greeting
    async with serve(llm.app()) as llm_url, serve(_receiver(webhook_status, got)) as hook_url:
        spec = _agent(llm_url, f"{hook_url}/handoff", tmp_path)
        async with web_server(tmp_path, Script(), spec=with_web(spec, WebSettings()), services=_services) as srv:
            page_html = embed_page(srv.base, autostart="1").replace("<h1>A site</h1>", "<h1>A site</h1>" + LISTEN)
            async with serve(site_app(page_html)) as site_base:
                srv.host.agents = {"restaurant": with_web(spec, WebSettings(allowed_origins=(site_base,)))}
                async with chromium(mic) as browser:
                    page = await browser.new_page()
                    await page.goto(site_base)
                    await wait_for(page, f"{CAPTIONS}.some(c => c[0] === 'visitor')", 30)
                    said = spec.humans.requested if delivered else "Sorry, I couldn't do that just now."
                    first_words = said.split(":")[0].split(",")[0]
                    await wait_for(page, f"{CAPTIONS}.some(c => c[0] === 'agent' && c[1].includes("
                                         f"{json.dumps(first_words)}))", 30)
                    notice = await page.evaluate(f"(() => {{ const n = {NOTICE}; return {{ hidden: n.hidden, "
                                                 "text: n.textContent, role: n.getAttribute('role'), "
                                                 "visible: n.getBoundingClientRect().height > 0 }; })()")
                    attribute = await page.evaluate(f"{ROOT}.getAttribute('data-voxline-handoff')")
                    events = await page.evaluate("window.handoffs")
                    logged = await page.evaluate("window.voxline.events.filter(e => e.kind === 'handoff').length")
                    await page.evaluate("window.voxline.hangUp()")
    assert len(got) == 1, got
    body, signed = got[0]
    assert signed and body["event"] == "handoff.requested" and body["channel"] == "web"
    assert body["target"] == "front-desk" and body["reason"] == "a refund" and "refund" in body["summary"]
    assert {"role": "caller", "text": SAID} in body["transcript"], body["transcript"]
    if delivered:
        assert notice == {"hidden": False, "text": "A person will call you back.", "role": "status",
                          "visible": True}
        assert attribute == "requested"
        assert events == [{"id": "voxline-widget", "detail": {
            "status": "requested", "target": "front-desk", "message": spec.humans.requested}}]
        assert logged == 1
    else:
        assert notice["hidden"] is True and not notice["visible"]
        assert attribute is None and events == [] and logged == 0
    assert server_errors == []
