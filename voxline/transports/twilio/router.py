"""FastAPI routes for Twilio: voice webhooks, the media stream, status callbacks.

Trust only what Twilio said: every webhook must carry a valid ``X-Twilio-Signature``,
and the stream is served only when its ``start`` presents the per-call token that our
own TwiML handed out for that CallSid (see :mod:`voxline.transports.call_token`). The
call's agent and numbers come from that signed TwiML, never from the stream's client.

- ``POST /twilio/voice``: an inbound call. Routed by the dialed number, admitted under
  the caps (else a spoken busy message), answered with ``<Connect><Stream>``.
- ``POST /twilio/answer?agent=NAME``: an outbound call we placed was answered.
- ``POST /twilio/status``: call progress and answering-machine verdicts.
- ``WS /twilio/stream``: the call's audio; handed to the call host.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

from fastapi import APIRouter, Request, Response, WebSocket, WebSocketDisconnect

from voxline.errors import ProviderError
from voxline.logsafe import clean, redact_number
from voxline.orchestration.human import placed_status
from voxline.pipelines.host import CallHost, IncomingCall
from voxline.transports import call_token

from .config import TwilioConfig
from .messages import CallInfo, StartMessageError, address, parse_start, valid_call_sid
from .rest import MachineDetection, TwilioRestClient
from .session import TwilioCall
from .signature import is_valid_signature, public_base, public_url, verified_form
from .twiml import say_and_hangup, stream_twiml

log = logging.getLogger("voxline.twilio")

TWIML = "application/xml"
STREAM_PATH = "/twilio/stream"
STATUS_PATH = "/twilio/status"
ANSWER_PATH = "/twilio/answer"
PHONE_RATE = 8000
# Twilio's status names for calls that never connected, as our end reasons.
_NOT_CONNECTED = {"busy": "busy", "no-answer": "no-answer", "failed": "failed", "canceled": "canceled"}
_CARRIER_STATES = frozenset({"queued", "initiated", "ringing", "in-progress", "answered", "completed",
                             *_NOT_CONNECTED})
_VERDICTS = frozenset({"human", "machine_start", "machine_end_beep", "machine_end_silence",
                       "machine_end_other", "fax", "unknown"})


def stream_url(base: str) -> str:
    """wss://host/twilio/stream from https://host (ws:// for plain http, e.g. tests)."""
    if base.startswith("https://"):
        return "wss://" + base[len("https://"):] + STREAM_PATH
    return "ws://" + base.removeprefix("http://") + STREAM_PATH


def call_identity(*, agent: str, direction: str, from_: str, to: str) -> dict[str, str]:
    """What the webhook established about a call; the token covers every field."""
    return {"agent": agent, "direction": direction, "from": from_, "to": to}


def twilio_router(
    config: TwilioConfig,
    host: CallHost,
    *,
    rest: TwilioRestClient,
    secret: bytes,
    verify_stream_signature: bool = True,
    session_options: dict[str, Any] | None = None,
) -> APIRouter:
    router = APIRouter()
    options = dict(session_options or {})
    serving: set[str] = set()  # CallSids whose stream this worker is serving

    def answer(request: Request, call_sid: str, identity: dict[str, str]) -> Response:
        params = {**identity, "token": call_token.issue(secret, call_sid, identity)}
        twiml = stream_twiml(stream_url(public_base(request, config)), params)
        return Response(twiml, media_type=TWIML)

    def busy() -> Response:
        return Response(say_and_hangup(host.limits.busy_message), media_type=TWIML)

    @router.post("/twilio/voice")
    async def voice(request: Request) -> Response:
        form = await verified_form(request, config)
        if form is None:
            return Response(status_code=403)
        call_sid = form.get("CallSid", "")
        if not valid_call_sid(call_sid):
            return Response("invalid CallSid", status_code=400)
        to, from_ = address(form.get("To")), address(form.get("From"))
        agent = config.agent_for(to) or await host.stored_route(to)
        if agent is None:
            log.info("%s inbound call to unrouted number %s", call_sid, redact_number(to))
            return Response(say_and_hangup(config.unknown_number_message), media_type=TWIML)
        if await host.admit(call_sid, agent) is not None:
            return busy()
        await host.announce(call_sid, agent=agent, channel="twilio", direction="inbound",
                            from_=from_, to=to, status="ringing")
        log.info("%s inbound call from %s routed to agent %s", call_sid, redact_number(from_), agent)
        return answer(request, call_sid, call_identity(agent=agent, direction="inbound", from_=from_, to=to))

    @router.post(ANSWER_PATH)
    async def answered(request: Request) -> Response:
        form = await verified_form(request, config)  # the signed URL carries the agent
        if form is None:
            return Response(status_code=403)
        call_sid, agent = form.get("CallSid", ""), request.query_params.get("agent", "")
        if not valid_call_sid(call_sid):
            return Response("invalid CallSid", status_code=400)
        if host.spec(agent) is None:
            log.warning("%s answered call names unknown agent %s", call_sid, clean(agent, 64))
            return Response(say_and_hangup(config.unknown_number_message), media_type=TWIML)
        if await host.admit(call_sid, agent) is not None:
            return busy()
        # Outbound: From is our number, To the person we called.
        from_, to = address(form.get("From")), address(form.get("To"))
        return answer(request, call_sid, call_identity(agent=agent, direction="outbound", from_=from_, to=to))

    @router.post(STATUS_PATH)
    async def status(request: Request) -> Response:
        form = await verified_form(request, config)
        if form is None:
            return Response(status_code=403)
        call_sid = form.get("CallSid", "")
        if not valid_call_sid(call_sid):
            return Response("invalid CallSid", status_code=400)
        state = form.get("CallStatus", "")
        state = state if state in _CARRIER_STATES else ""
        # A person's leg of a warm transfer, here or (forwarded) on the worker that placed
        # it; a task call's status also reaches its placer, and its record is updated below.
        if await placed_status(host, call_sid, state):
            return Response(status_code=204)
        answered_by = form.get("AnsweredBy", "")
        answered_by = answered_by if answered_by in _VERDICTS else None
        records = host.records
        if records is not None:
            over = state in _NOT_CONNECTED or (state == "completed" and call_sid not in host.calls)
            if over:
                # A call that never streamed here gives its place under the caps back now,
                # not when the webhook's reservation lapses.
                record = await records.get(call_sid)
                if record is not None:
                    await host.release(call_sid, record.agent)
            if state in _NOT_CONNECTED:
                await records.close(call_sid, reason=_NOT_CONNECTED[state])
            elif state == "completed" and call_sid not in host.calls:
                await records.close(call_sid, reason="caller_hung_up")  # no-op if already closed
            elif state in ("queued", "initiated", "ringing", "in-progress", "answered"):
                await records.set_state(call_sid, "in-progress" if state == "answered" else state,
                                        answered_by=answered_by)
            if answered_by:
                await records.set_state(call_sid, "", answered_by=answered_by)
        log.info("%s status %s%s", call_sid, clean(state, 32),
                 f" answered_by={clean(answered_by, 32)}" if answered_by else "")
        if answered_by and state not in _NOT_CONNECTED and state != "completed":
            await host.on_answered_by(call_sid, answered_by)
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
        if info is None or not _announced(info, secret):
            if info is not None:
                log.warning("%s rejected stream: no valid call token", info.call_sid)
            await _close_quietly(websocket, 1008)
            return
        if info.call_sid in serving:  # checked and taken with no await between: no race
            log.warning("%s rejected stream: the call is already streaming here", info.call_sid)
            await _close_quietly(websocket, 1008)
            return
        serving.add(info.call_sid)
        try:
            await _serve(websocket, info)
        finally:
            serving.discard(info.call_sid)

    async def _serve(websocket: WebSocket, info: CallInfo) -> None:
        records = host.records
        early = await records.get(info.call_sid) if records is not None else None
        call = TwilioCall.create(websocket, info, rest=rest, **options)
        incoming = IncomingCall(
            call_id=info.call_sid, agent=info.agent or "", channel="twilio", direction=info.direction,
            caller=info.caller, dialed=info.dialed, transport=call.transport, line=call,
            sample_rate=PHONE_RATE, before_llm=[call.dtmf_aggregator(1.5)],
            before_output=[call.heard.observer], after_output=[call.heard.gate], stats=call.stats,
            hangup=call.serializer.hung_up,
            answered_by=early.answered_by if early is not None else None,
        )
        log.info("%s stream %s started (agent %s)", info.call_sid, clean(info.stream_sid, 40), info.agent)
        try:
            await host.run(incoming)
        finally:
            await _close_quietly(websocket, 1000)

    return router


def _announced(info: CallInfo, secret: bytes) -> bool:
    """The start carries the token our TwiML issued for this CallSid and identity."""
    p = info.custom_parameters
    identity = call_identity(agent=p.get("agent", ""), direction=p.get("direction", ""),
                             from_=p.get("from", ""), to=p.get("to", ""))
    return call_token.verify(secret, p.get("token"), info.call_sid, identity)


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
        if len(raw) > config.max_message_bytes:
            log.warning("- stream message of %d bytes before start", len(raw))
            return None
        try:
            message = json.loads(raw)
        except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
            continue
        if not isinstance(message, dict):
            continue
        if message.get("event") == "start":
            try:
                info = parse_start(message)
            except StartMessageError as e:
                log.warning("- bad start message: %s", clean(e))
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
    host: CallHost,
    rest: TwilioRestClient,
    to: str,
    from_: str,
    agent: str,
    public_base_url: str,
    machine_detection: MachineDetection | None = None,
) -> str:
    """Create an outbound call; Twilio fetches its stream TwiML from our answer URL.

    The call's place under the agent's and tenant's caps is taken before Twilio is asked
    (:class:`CallRefused` when there is none: no call is placed, nobody's phone rings),
    then moved to the new CallSid, which the answer webhook finds already admitted."""
    hold = f"placing-{uuid.uuid4().hex}"
    refusal = await host.admit(hold, agent)
    if refusal is not None:
        raise CallRefused(refusal)
    base = public_base_url.rstrip("/")
    try:
        sid = await rest.create_call(
            to=to,
            from_=from_,
            url=f"{base}{ANSWER_PATH}?agent={agent}",
            status_callback=base + STATUS_PATH,
            machine_detection=machine_detection,
        )
    finally:
        await host.release(hold, agent)
    refusal = await host.admit(sid, agent)
    if refusal is not None:  # raced past the cap in between: hang up before it rings
        with contextlib.suppress(ProviderError):
            await rest.hang_up(sid)
        raise CallRefused(refusal)
    await host.announce(sid, agent=agent, channel="twilio", direction="outbound",
                        from_=from_, to=to, status="queued")
    return sid


class CallRefused(Exception):
    """No place under the call caps ("busy") or the server is draining."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
