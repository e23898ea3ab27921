"""FastAPI routes for Twilio: voice webhook, media stream websocket, status callback.

``twilio_router(config, on_stream)`` returns an ``APIRouter``; the server mounts it.
``on_stream(websocket, call)`` runs the agent pipeline for one call and returns when
the call is over; the router owns the call record around it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response, WebSocket, WebSocketDisconnect

from .config import TwilioConfig, redact_number
from .messages import CallInfo, StartMessageError, parse_start
from .records import FINAL_STATES, CallRecords, InMemoryCallRecords
from .rest import MachineDetection, TwilioRestClient
from .session import TwilioCall
from .signature import is_valid_signature, public_base, public_url, verified_form
from .twiml import say_and_hangup, stream_twiml

log = logging.getLogger("voxline.twilio")

OnStream = Callable[[WebSocket, TwilioCall], Awaitable[None]]
OnStatus = Callable[[str, str, str | None], Awaitable[None]]  # call_sid, status, answered_by

TWIML = "application/xml"
STREAM_PATH = "/twilio/stream"
STATUS_PATH = "/twilio/status"


def stream_url(base: str) -> str:
    """wss://host/twilio/stream from https://host (ws:// for plain http, e.g. tests)."""
    if base.startswith("https://"):
        return "wss://" + base[len("https://"):] + STREAM_PATH
    return "ws://" + base.removeprefix("http://") + STREAM_PATH


def call_parameters(*, agent: str, direction: str, from_: str, to: str) -> dict[str, str]:
    """The <Parameter>s that carry a call's identity to the stream's `start`."""
    return {"agent": agent, "direction": direction, "from": from_, "to": to}


def twilio_router(
    config: TwilioConfig,
    on_stream: OnStream,
    *,
    records: CallRecords | None = None,
    rest: TwilioRestClient | None = None,
    on_status: OnStatus | None = None,
    verify_stream_signature: bool = True,
    session_options: dict[str, Any] | None = None,
) -> APIRouter:
    records = records or InMemoryCallRecords()
    rest = rest or TwilioRestClient(config.account_sid, config.auth_token, base_url=config.api_base_url)
    router = APIRouter()
    router.records = records  # type: ignore[attr-defined]  # so the server/tests can read them
    router.rest = rest  # type: ignore[attr-defined]
    options = dict(session_options or {})

    @router.post("/twilio/voice")
    async def voice(request: Request) -> Response:
        form = await verified_form(request, config)
        if form is None:
            return Response(status_code=403)
        call_sid = form.get("CallSid", "-")
        to, from_ = form.get("To", ""), form.get("From", "")
        agent = config.agent_for(to)
        if agent is None:
            log.info("%s inbound call to unrouted number %s", call_sid, redact_number(to))
            return Response(say_and_hangup(config.unknown_number_message), media_type=TWIML)
        await records.open(call_sid, direction="inbound", agent=agent, from_number=from_, to_number=to)
        await records.set_state(call_sid, "ringing")
        params = call_parameters(agent=agent, direction="inbound", from_=from_, to=to)
        twiml = stream_twiml(stream_url(public_base(request, config)), params)
        log.info("%s inbound call from %s routed to agent %s", call_sid, redact_number(from_), agent)
        return Response(twiml, media_type=TWIML)

    @router.post(STATUS_PATH)
    async def status(request: Request) -> Response:
        form = await verified_form(request, config)
        if form is None:
            return Response(status_code=403)
        call_sid = form.get("CallSid", "-")
        state = form.get("CallStatus", "")
        answered_by = form.get("AnsweredBy")
        await records.set_state(call_sid, state, answered_by=answered_by)
        if state in FINAL_STATES and state != "completed":
            await records.close(call_sid, reason="failed")
        elif state == "completed":
            await records.close(call_sid, reason="caller_hung_up")  # no-op if already closed
        log.info("%s status %s%s", call_sid, state, f" answered_by={answered_by}" if answered_by else "")
        if on_status:
            await on_status(call_sid, state, answered_by)
        return Response(status_code=204)

    @router.websocket(STREAM_PATH)
    async def stream(websocket: WebSocket) -> None:
        if verify_stream_signature:
            url = public_url(websocket, config)
            url = url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
            signature = websocket.headers.get("x-twilio-signature")
            if not is_valid_signature(config.auth_token, url, {}, signature):
                log.warning("- rejected stream: %s X-Twilio-Signature", "missing" if not signature else "invalid")
                await websocket.close(code=1008)
                return
        await websocket.accept()
        info = await _read_start(websocket, config)
        if info is None:
            await _close_quietly(websocket, 1008)
            return
        call = TwilioCall.create(websocket, info, records=records, rest=rest, **options)
        await records.open(
            info.call_sid, direction=info.direction, agent=info.agent,
            from_number=info.caller, to_number=info.dialed,
        )
        await records.set_state(info.call_sid, "in-progress")
        log.info("%s stream %s started (agent %s)", info.call_sid, info.stream_sid, info.agent)
        reason = "dropped"
        try:
            await on_stream(websocket, call)
            reason = call.end_reason or ("caller_hung_up" if call.serializer.stopped else "dropped")
        except asyncio.CancelledError:
            reason = "dropped"  # server shutting down
            raise
        except Exception:
            log.exception("%s pipeline failed", info.call_sid)
            reason = "failed"
        finally:
            await records.close(info.call_sid, reason=reason, stats=call.stats())
            log.info("%s stream ended: %s", info.call_sid, reason)
            await _close_quietly(websocket, 1000)

    return router


async def _read_start(websocket: WebSocket, config: TwilioConfig) -> CallInfo | None:
    """Read until `start`. Media before it is dropped (counted); bounded in count and time."""
    early = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + config.start_timeout_secs
    for _ in range(config.max_messages_before_start):
        try:
            raw = await asyncio.wait_for(websocket.receive_text(), max(0.0, deadline - loop.time()))
        except (TimeoutError, WebSocketDisconnect, RuntimeError, KeyError):
            log.warning("- stream closed or timed out before start")
            return None
        try:
            message = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if not isinstance(message, dict):
            continue
        if message.get("event") == "start":
            try:
                info = parse_start(message)
            except StartMessageError as e:
                log.warning("- bad start message: %s", e)
                return None
            if early:
                log.info("%s dropped %d messages received before start", info.call_sid, early)
            return info
        if message.get("event") != "connected":
            early += 1
    log.warning("- no start within %d messages", config.max_messages_before_start)
    return None


async def _close_quietly(websocket: WebSocket, code: int) -> None:
    try:
        await websocket.close(code=code)
    except RuntimeError:
        pass  # already closed


async def place_outbound_call(
    *,
    config: TwilioConfig,
    rest: TwilioRestClient,
    records: CallRecords,
    to: str,
    from_: str,
    agent: str,
    public_base_url: str,
    machine_detection: MachineDetection | None = MachineDetection(),
) -> str:
    """Create an outbound call whose TwiML connects straight to our stream."""
    base = public_base_url.rstrip("/")
    params = call_parameters(agent=agent, direction="outbound", from_=from_, to=to)
    sid = await rest.create_call(
        to=to,
        from_=from_,
        twiml=stream_twiml(stream_url(base), params),
        status_callback=base + STATUS_PATH,
        machine_detection=machine_detection,
    )
    await records.open(sid, direction="outbound", agent=agent, from_number=from_, to_number=to)
    await records.set_state(sid, "queued")
    return sid
