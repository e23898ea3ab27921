"""``builtin:transfer_to_human``: pass the caller to a person, warm or cold.

Phone (Twilio), **warm**: the caller is told to hold and hears hold audio on our own
stream while the person's phone rings (a second call leg, placed over REST, whose TwiML
says a spoken summary of the call and then joins a conference room). When Twilio
reports that leg answered, the caller's call is moved into the same room (where it
waits, with Twilio's hold music, until the person has heard the summary and joins):
both are bridged and our part of the call ends as ``transferred``. If the person's
leg is busy, not answered, fails, or rings past ``ring_secs`` (it is then hung up), the
hold audio stops and the agent takes the caller back and says so; the call goes on.
**cold**: the caller is put straight through (``<Dial>``), as ``transfer_call`` does.

Web callers (and any call with no number to ring): the request, with a summary and
the transcript, is POSTed to the target's ``webhook`` (HMAC-signed with
``$secret_env`` like webhook tools), and the agent says that a person will call back.

The person's leg reports its progress through the Twilio status callback route
(transports/twilio/router.py), which may run on any worker behind the balancer. The
worker that places a leg holds ``leg:<CallSid>`` in the live state (for the ring time);
:func:`placed_status` hands a status to the leg waiting in this process, or forwards
it to the inbox of the worker holding that key, whose inbox reader hands it on with
:func:`forwarded_status`. Task calls (orchestration/tasks.py) are routed the same way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import uuid
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.frames.frames import OutputAudioRawFrame, TTSSpeakFrame

from voxline.errors import ToolError
from voxline.integrations.tools.runtime import Told
from voxline.logsafe import redact_number
from voxline.orchestration.settings import HumanHandoff as HumanSettings
from voxline.orchestration.settings import HumanTarget
from voxline.processors.call_log import ToolCallRecord

log = logging.getLogger("voxline.orchestration")

ANSWERED = {"in-progress", "answered"}
NOT_ANSWERED = {"busy", "no-answer", "failed", "canceled", "completed"}
STATUSES = ANSWERED | NOT_ANSWERED | {"queued", "initiated", "ringing"}
LEG_KEY = "leg:"  # live-state key of who placed a person's leg (not who streams a call)
_legs: dict[str, asyncio.Queue[str]] = {}  # CallSid of a person's leg -> its statuses


def leg_status(call_sid: str, status: str) -> bool:
    """A Twilio status callback for ``call_sid``: True if it is a leg we are waiting on."""
    queue = _legs.get(call_sid)
    if queue is None:
        from voxline.orchestration.tasks import task_status

        task_status(call_sid, status)  # a task call's record is the router's to update: not ours
        return False
    queue.put_nowait(status)
    return True


async def placed_status(host: Any, call_sid: str, status: str) -> bool:
    """A status callback, on whichever worker it landed: True if it is a person's leg.

    Handed to the leg or task call waiting here, else sent to the worker that placed it
    (once: a worker only forwards what it does not hold). A CallSid no worker placed does
    nothing here (the router treats it as an ordinary call's status)."""
    if leg_status(call_sid, status):
        return True
    from voxline.orchestration.tasks import NEVER_CONNECTED, TASK_KEY

    live, is_leg = host.live, True
    owner = await live.owner_of(LEG_KEY + call_sid)
    if owner is None and status in NEVER_CONNECTED:  # a task call waits only for these
        owner, is_leg = await live.owner_of(TASK_KEY + call_sid), False
    if owner is None:
        return False
    if owner != host.owner:
        await live.send(owner, {"kind": "leg_status", "call_sid": call_sid, "status": status})
    return is_leg  # held here but no longer waited on: a late status, nothing to do


def forwarded_status(message: dict[str, Any]) -> None:
    """A status another worker forwarded to this one's inbox (see :func:`placed_status`)."""
    call_sid, status = message.get("call_sid"), message.get("status")
    if isinstance(call_sid, str) and isinstance(status, str) and status in STATUSES:
        leg_status(call_sid, status)  # an unknown CallSid is in no table: nothing happens


def human_schema(settings: HumanSettings) -> FunctionSchema:
    labels = list(settings.targets)
    properties: dict[str, Any] = {"reason": {"type": "string", "description": "Why, in a few words."}}
    if len(labels) > 1:
        properties["target"] = {"type": "string", "enum": labels}
    return FunctionSchema(
        name="transfer_to_human",
        description="Pass the caller to a person, when they ask for one or you cannot help them.",
        properties=properties, required=[],
    )


def conference_twiml(room: str, *, say: str | None = None, starts: bool, voice: str | None = None) -> str:
    """Join ``room``; ``starts``: the conference begins (and ends) with this participant."""
    response = ET.Element("Response")
    if say:
        ET.SubElement(response, "Say", {"voice": voice} if voice else {}).text = say
    dial = ET.SubElement(response, "Dial")
    ET.SubElement(dial, "Conference", {
        "startConferenceOnEnter": "true" if starts else "false",
        "endConferenceOnExit": "true", "beep": "false",
    }).text = room
    return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(response, encoding="unicode")


def hold_audio(sample_rate: int, secs: float = 1.0, t0: float = 0.0) -> bytes:
    """A quiet two-note chime, then silence: what a caller on hold hears from us."""
    n = int(sample_rate * secs)
    t = t0 + np.arange(n) / sample_rate
    phase = t % 4.0  # one chime every four seconds
    tone = np.where(phase < 0.4, np.sin(2 * math.pi * 660 * t), 0.0)
    tone += np.where((phase >= 0.4) & (phase < 0.8), np.sin(2 * math.pi * 880 * t), 0.0)
    envelope = np.clip(np.minimum(phase % 0.4, 0.4 - phase % 0.4) * 20, 0, 1)
    return (tone * envelope * 2500).astype(np.int16).tobytes()


def call_summary(session: Any, reason: str = "") -> tuple[str, list[dict[str, str]]]:
    """A spoken summary (the caller's lines, and what tools did) and the transcript."""
    transcript: list[dict[str, str]] = []
    for turn in session.log.turns:
        if turn.user_text:
            transcript.append({"role": "caller", "text": turn.user_text})
        if turn.agent_text:
            transcript.append({"role": turn.agent or "agent", "text": turn.agent_text})
    said = [t["text"] for t in transcript if t["role"] == "caller"][-4:]
    done = [c.name.replace("_", " ") for t in session.log.turns for c in t.tool_calls
            if c.error is None and not c.name.startswith(("guardrail:", "transfer_to"))]
    parts = []
    if reason:
        parts.append(f"They need: {reason}.")
    if said:
        parts.append("They said: " + " ".join(said))
    if done:
        parts.append("Already done: " + ", ".join(dict.fromkeys(done)) + ".")
    return " ".join(parts) or "No details were given.", transcript


class HumanHandoff:
    def __init__(self, spec: Any, session: Any, *, line: Any = None, channel: str = "sim", host: Any = None):
        assert spec.humans is not None
        self.spec, self.settings, self.session = spec, spec.humans, session
        self.line, self.channel, self.host = line, channel, host
        self.hold_started: float | None = None
        self.hold_chunks = 0

    def _target(self, arguments: dict[str, Any]) -> tuple[str, HumanTarget]:
        labels = list(self.settings.targets)
        label = str(arguments.get("target") or labels[0])
        target = self.settings.targets.get(label)
        if target is None:
            raise ToolError(f"no such person to pass the caller to: {label!r}")
        return label, target

    async def run(self, arguments: dict[str, Any]) -> dict[str, Any]:
        label, target = self._target(arguments)
        reason = str(arguments.get("reason") or "")
        summary, transcript = call_summary(self.session, reason)
        rest = getattr(self.line, "rest", None)
        if self.channel == "twilio" and target.number and rest is not None:
            if target.mode == "cold":
                return await self._cold(label, target)
            return await self._warm(label, target, summary)
        if self.channel == "sip" and target.number and self.line is not None:
            # SIP's warm transfer is the attended one (a consultation call, then REFER
            # with Replaces), which the line falls back from to a blind REFER by itself.
            how = ";transfer=attended" if target.mode == "warm" else ";transfer=blind"
            return await self._cold(label, target, dial=target.number + how)
        if target.webhook:
            await self._request(label, target, summary, transcript, reason)
            notify = getattr(self.line, "notify_handoff", None)  # the web widget shows it, once delivered
            if notify is not None:
                await notify("requested", target=label, message=self.settings.requested)
            await self._say(self.settings.requested)
            return Told(status="requested", target=label, callback=True)
        await self._say(self.settings.unavailable)
        return Told(status="unavailable", target=label)

    # -- speaking and holding ---------------------------------------------------------
    async def _say(self, text: str, *, wait: bool = False) -> None:
        line = self.line
        since = getattr(line, "heard_count", 0)
        await self.session.worker.queue_frame(TTSSpeakFrame(text))
        if wait and line is not None and hasattr(line, "wait_heard"):
            await line.wait_heard(text, since=since, timeout=15.0)

    async def _hold(self, stop: asyncio.Event) -> None:
        """Hold audio into the call, a second at a time, until ``stop``."""
        rate = getattr(self.line, "sample_rate", None) or 8000
        loop = asyncio.get_running_loop()
        self.hold_started = loop.time()
        n = 0
        while not stop.is_set():
            await self.session.worker.queue_frame(
                OutputAudioRawFrame(audio=hold_audio(rate, 1.0, float(n)), sample_rate=rate, num_channels=1))
            n += 1
            self.hold_chunks = n
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, self.hold_started + n - loop.time()))
            except TimeoutError:
                pass

    # -- phone ----------------------------------------------------------------------
    def _caller_id(self) -> str | None:
        incoming = getattr(self.session, "incoming", None)
        return getattr(incoming, "dialed", None) or os.environ.get("VOXLINE_CALLER_ID")

    def _status_url(self) -> str:
        public = os.environ.get("VOXLINE_PUBLIC_URL")
        if public:
            return public.rstrip("/") + "/twilio/status"
        websocket = getattr(self.line, "websocket", None)
        url = str(getattr(websocket, "url", "")) if websocket is not None else ""
        base = url.split("/twilio/")[0].replace("wss://", "https://", 1).replace("ws://", "http://", 1)
        return base + "/twilio/status"

    async def _cold(self, label: str, target: HumanTarget, *, dial: str | None = None) -> dict[str, Any]:
        await self._say(self.settings.hold_message, wait=True)
        try:
            await self.line.transfer(dial or target.number)
        except Exception as e:
            raise ToolError(f"transfer failed: {type(e).__name__}") from e
        await self._transferred(target.number or "")
        return Told(status="transferred", target=label, mode="cold")

    async def _warm(self, label: str, target: HumanTarget, summary: str) -> dict[str, Any]:
        rest, line = self.line.rest, self.line
        number = target.number or ""
        await self._say(self.settings.hold_message, wait=True)
        stop = asyncio.Event()
        hold = asyncio.ensure_future(self._hold(stop))
        room = f"voxline-{line.call_id}-{uuid.uuid4().hex[:8]}"
        spoken = self.settings.connected_summary.format(agent=self.spec.name, summary=summary)
        leg: str | None = None
        queue: asyncio.Queue[str] = asyncio.Queue()
        try:
            caller_id = self._caller_id()
            if not caller_id:
                raise ToolError("no caller id to ring the person from")
            leg = await rest.create_call(to=number, from_=caller_id,
                                         twiml=conference_twiml(room, say=spoken, starts=True),
                                         status_callback=self._status_url(),
                                         status_events=("initiated", "ringing", "answered", "completed"))
            _legs[leg] = queue
            await self._hold_leg(leg, target.ring_secs)
            answered = await self._wait_answer(queue, target.ring_secs)
            if answered:
                await rest.update_twiml(line.call_id, conference_twiml(room, starts=False))
                stop.set()
                await self._transferred(number)
                log.info("%s warm transfer to %s (%s) bridged", line.call_id, label, redact_number(number))
                return Told(status="transferred", target=label, mode="warm")
            try:
                await rest.hang_up(leg)  # still ringing: stop it
            except Exception as e:
                log.warning("%s hanging up the unanswered leg failed: %s", line.call_id, type(e).__name__)
        except ToolError:
            raise
        except Exception as e:
            log.error("%s warm transfer failed: %s", line.call_id, type(e).__name__)
        finally:
            stop.set()
            await asyncio.gather(hold, return_exceptions=True)
            if leg is not None:
                _legs.pop(leg, None)
                await self._hold_leg(leg, None)
        log.info("%s warm transfer to %s: nobody answered, the agent takes the caller back", line.call_id, label)
        await self._say(self.settings.no_answer)
        self.session.log.tool_call(ToolCallRecord(name="guardrail:human_no_answer", arguments={"target": label},
                                                  result={"status": "no answer"}))
        return Told(status="no answer", target=label)

    async def _hold_leg(self, leg: str, ring_secs: float | None) -> None:
        """Claim (or, with None, let go of) ``leg`` in the live state, so that its status
        callbacks landing on another worker are forwarded here. The key outlives the ring
        time a little and lapses by itself if this worker dies."""
        live, owner = getattr(self.host, "live", None), getattr(self.host, "owner", None)
        if live is None or owner is None:
            return  # no call host (tests, simulate): one process, the local table is enough
        try:
            if ring_secs is None:
                await live.release_call(LEG_KEY + leg, owner)
            else:
                await live.claim_call(LEG_KEY + leg, owner, ring_secs + 30.0)
        except Exception as e:  # noqa: BLE001 - a live-state outage leaves us the local table
            log.warning("%s live state for the person's leg: %s", self.line.call_id, type(e).__name__)

    @staticmethod
    async def _wait_answer(queue: asyncio.Queue[str], ring_secs: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ring_secs
        while True:
            try:
                status = await asyncio.wait_for(queue.get(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                return False
            if status in ANSWERED:
                return True
            if status in NOT_ANSWERED:
                return False

    async def _transferred(self, target: str) -> None:
        control = getattr(self.session, "control", None)
        if control is not None:
            if control.on_transfer is not None:
                await control.on_transfer(target)
            await control._ended("transferred")
        else:
            await self.session.end("transferred")

    # -- web and others ---------------------------------------------------------------
    async def _request(self, label: str, target: HumanTarget, summary: str,
                       transcript: list[dict[str, str]], reason: str) -> None:
        import httpx

        from voxline.integrations.tools.http import sign

        incoming = getattr(self.session, "incoming", None)
        body = json.dumps({
            "event": "handoff.requested", "call_id": self.session.call_id, "agent": self.spec.name,
            "target": label, "channel": self.channel, "caller": getattr(incoming, "caller", None)
            or self.session.caller_id, "reason": reason, "summary": summary, "transcript": transcript,
        }).encode()
        headers = {"content-type": "application/json"}
        if target.secret_env:
            secret = os.environ.get(target.secret_env)
            if not secret:
                raise ToolError(f"{target.secret_env} is not set")
            headers["X-Voxline-Signature"] = sign(secret, body)
        last: Exception | None = None
        async with httpx.AsyncClient(timeout=5.0) as client:
            for attempt in range(3):
                if attempt:
                    await asyncio.sleep(0.2 * 2 ** (attempt - 1))
                try:
                    response = await client.post(target.webhook or "", content=body, headers=headers)
                except httpx.TransportError as e:
                    last = e
                    continue
                if response.status_code < 300:
                    return
                last = ToolError(f"handoff webhook answered HTTP {response.status_code}")
                if response.status_code < 500 and response.status_code not in (408, 429):
                    break
        raise ToolError(f"the handoff request could not be delivered: {last}")
