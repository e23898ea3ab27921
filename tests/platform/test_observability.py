"""One real phone call through the platform (Twilio fakes, real websockets, Postgres):
Prometheus metrics, OpenTelemetry spans (in-memory exporter), signed webhooks with
retries to a loopback receiver, the agent version recorded with the call; JSON logs."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid

import pytest
from fastapi import FastAPI, Request, Response
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.fakes.twilio_loopback import serve
from tests.phone.kit import AgentScript, silence, speech
from voxline.api.webhooks import verify_signature
from voxline.observability.logs import JsonFormatter

from .conftest import PlatformServer

pytestmark = pytest.mark.services
CALLER = "+15557654321"
EXPORTER = InMemorySpanExporter()


def reply(text: str):
    if "front desk" in text:
        return ("transfer_call", {})
    return "Sure, for what time?"


@pytest.fixture
def script() -> AgentScript:
    return AgentScript(greeting="Hello, thanks for calling.",
                       transcripts=["I would like a table for two.", "Put me through to the front desk please."],
                       reply=reply)


@pytest.fixture
def platform_options() -> dict:
    EXPORTER.clear()
    return {"tracing_exporter": EXPORTER}


class Receiver:
    """A webhook endpoint on loopback: answers 500 to the first delivery, then 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.app = FastAPI()
        self.fail_first = True

        @self.app.post("/hook")
        async def hook(request: Request) -> Response:
            self.requests.append((dict(request.headers), await request.body()))
            if self.fail_first:
                self.fail_first = False
                return Response(status_code=500)
            return Response(status_code=204)

    def events(self) -> list[dict]:
        seen: dict[str, dict] = {}
        for _headers, body in self.requests:
            event = json.loads(body)
            seen[event["id"]] = event
        return list(seen.values())


async def until(predicate, timeout: float) -> bool:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


def sample(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_a_call_feeds_metrics_traces_webhooks_and_its_record(platform_server: PlatformServer) -> None:
    server, tenant = platform_server, platform_server.tenant
    receiver = Receiver()
    async with serve(receiver.app) as hook_base, server.client() as admin:
        r = await admin.post(f"/api/v1/tenants/{tenant}/webhooks", json={
            "url": hook_base + "/hook", "events": ["call.started", "call.ended", "handoff.requested"]})
        assert r.status_code == 201
        secret = r.json()["secret"]
        before = (await admin.get("/metrics")).text
        sid = "CA" + uuid.uuid4().hex
        call = await server.incoming(sid, from_=CALLER)
        await call.connect()
        try:
            assert await until(lambda: len(call.played) > 8000, 10)
            assert (await admin.get("/metrics")).text.count("voxline_calls_active") > 0
            live = sample((await admin.get("/metrics")).text, "voxline_calls_active", tenant=tenant)
            assert live == 1.0
            await asyncio.sleep(0.8)
            call.say(speech("I would like a table for two.") + silence(0.3))
            await call.wait_said()
            n = len(call.played)
            assert await until(lambda: len(call.played) > n + 4000, 10)
            await asyncio.sleep(1.2)
            call.say(speech("Put me through to the front desk please.") + silence(0.3))
            await call.wait_said()
            record = await server.host.records.wait_closed(sid, 15)
        finally:
            await call.close()
        assert record.end_reason == "transferred"
        assert await until(lambda: {e["event"] for e in receiver.events()} >= {
            "call.started", "handoff.requested", "call.ended"}, 20), receiver.events()
        after = (await admin.get("/metrics")).text
        detail = (await admin.get(f"/api/v1/tenants/{tenant}/calls/{sid}")).json()
        deliveries = (await admin.get(f"/api/v1/tenants/{tenant}/webhook-deliveries")).json()["deliveries"]

    # Webhooks: signed, retried after the 500, the summary in call.ended.
    for headers, body in receiver.requests:
        assert verify_signature(secret, headers["voxline-signature"], body)
        assert not verify_signature("whsec_wrong", headers["voxline-signature"], body)
    events = {e["event"]: e for e in receiver.events()}
    assert events["call.started"]["data"]["call_id"] == sid and events["call.started"]["tenant"] == tenant
    assert events["handoff.requested"]["data"]["target"] == "+15550002222"
    ended = events["call.ended"]["data"]
    assert ended["outcome"] == "transferred" and ended["summary"], ended
    first_id = json.loads(receiver.requests[0][1])["id"]
    assert [json.loads(b)["id"] for _h, b in receiver.requests].count(first_id) == 2  # the same delivery, again
    assert sorted(d["attempts"] for d in deliveries if d["status"] == "delivered")[-1] == 2

    # Metrics: labelled by tenant and agent, never by call or caller.
    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("voxline_calls_total", tenant=tenant, agent="restaurant", outcome="transferred") == 1
    assert sample(after, "voxline_calls_active", tenant=tenant) == 0
    assert delta("voxline_turn_latency_seconds_count", tenant=tenant, stage="voice_to_voice") >= 1
    assert delta("voxline_turn_latency_seconds_count", tenant=tenant, stage="stt") >= 1
    assert delta("voxline_tool_calls_total", tenant=tenant, tool="transfer_call", outcome="ok") == 1
    assert sid not in after and "7654321" not in after

    # The record names what the call ran.
    assert detail["agent_version"]["version"] is None and len(detail["agent_version"]["spec_sha256"]) == 64

    # Traces: call -> turn -> stt / llm / tts / tool, no words in the attributes.
    spans = [s for s in EXPORTER.get_finished_spans() if s.attributes.get("voxline.call_id") == sid
             or s.parent is not None]
    call_span = next(s for s in spans if s.name == "call" and s.attributes["voxline.call_id"] == sid)
    assert call_span.attributes["voxline.outcome"] == "transferred"
    trace_id = call_span.context.trace_id
    mine = [s for s in spans if s.context.trace_id == trace_id]
    turns = [s for s in mine if s.name == "turn"]
    assert turns and all(t.parent.span_id == call_span.context.span_id for t in turns)
    children = {s.name for s in mine if s.parent is not None and s.parent.span_id in {t.context.span_id
                                                                                      for t in turns}}
    assert {"stt", "llm", "tts", "tool transfer_call"} <= children, children
    attributes = " ".join(str(dict(s.attributes)) for s in mine)
    assert "table for two" not in attributes and "front desk" not in attributes and CALLER not in attributes
    assert any(s.attributes.get("voxline.turn.user_text.chars") for s in turns)


def test_json_logs_put_the_call_id_first() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord("voxline.host", logging.INFO, __file__, 1, "%s call ended: %s after %d turns",
                               ("CA" + "0" * 32, "completed", 3), None)
    line = formatter.format(record)
    assert line.startswith('{"call_id": "CA' + "0" * 32 + '"')
    data = json.loads(line)
    assert data["msg"] == "call ended: completed after 3 turns" and data["level"] == "INFO"
    none = json.loads(formatter.format(logging.LogRecord("voxline.server", logging.WARNING, __file__, 1,
                                                         "- phone routes off: %s", ("x",), None)))
    assert none["call_id"] is None and none["msg"] == "phone routes off: x"


async def test_spans_reach_an_otlp_receiver_from_the_environment(monkeypatch) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT set: spans go out as OTLP/HTTP protobuf (a loopback receiver)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from voxline.observability.host_events import CallInfo
    from voxline.observability.tracing import TracingListener, tracer_provider
    from voxline.processors.call_log import ToolCallRecord, TurnRecord
    from voxline.spec import parse_spec

    received: list[ExportTraceServiceRequest] = []
    app = FastAPI()

    @app.post("/v1/traces")
    async def traces(request: Request) -> Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.body())
        received.append(message)
        return Response(status_code=200)

    async with serve(app) as base:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", base)
        provider = tracer_provider()
        assert provider is not None
        listener = TracingListener(provider)
        spec = parse_spec({"name": "desk", "prompt": "p"})
        call = CallInfo("call-1", "acme", "desk", "twilio", "inbound", spec, caller="+15550009876")
        listener.call_started(call)
        now = time.time()
        turn = TurnRecord(index=1, user_text="my card is 4111", agent_text="Thanks.", started_at=now,
                          ended_at=now + 2, latency_ms={"stt": 120.0, "llm_ttft": 300.0, "tts_ttfb": 90.0},
                          tool_calls=[ToolCallRecord("lookup", {"card": "4111"}, duration_ms=40.0)])
        listener.turn_closed(call, turn)
        listener.call_ended(call, "completed", None)
        await asyncio.to_thread(provider.force_flush)
        assert await until(lambda: sum(len(ss.spans) for m in received for rs in m.resource_spans
                                       for ss in rs.scope_spans) >= 6, 10)
        await asyncio.to_thread(listener.shutdown)
    spans = [s for m in received for rs in m.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert {s.name for s in spans} == {"call", "turn", "stt", "llm", "tts", "tool lookup"}
    assert "4111" not in str(received) and "+15550009876" not in str(received)
