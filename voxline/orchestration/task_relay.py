"""A task call whose media stream lands on another worker than the one that dialled.

The dialling worker keeps the task (its text, the task agent's name, the dialler's
owner id and a token) in the live state under the CallSid (:func:`share_task`). The
worker that gets the stream takes it from there (:func:`adopt_shared_task`: one worker
does, and what it reads is checked before the agent sees it), gives its agent the task
and, when the call ends, sends the outcome to the dialler's inbox. There
:func:`outcome_message` resolves the waiting dial once; a second outcome, one with the
wrong token, or one for a call nobody here waits for is ignored.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from typing import Any

from voxline.orchestration.tasks import _pending, give_task

log = logging.getLogger("voxline.orchestration")

VALUE_KEY = "taskcall:"  # live-state key of a placed task call's task (beside its TASK_KEY claim)
MAX_TASK_CHARS, MAX_FIELD_CHARS, MAX_NAME_CHARS = 4000, 1000, 200
OUTCOME_FIELDS = ("status", "confirmation", "details")
_SID = re.compile(r"CA[0-9a-fA-F]{32}")
_TOKEN = re.compile(r"[0-9a-f]{32}")


def _sid_for_log(value: Any) -> str:
    """A CallSid as it may be logged: only one of Twilio's shape is echoed."""
    return value if isinstance(value, str) and _SID.fullmatch(value) else "(malformed CallSid)"


def _text(value: Any, limit: int) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


async def share_task(live: Any, call_sid: str, *, task: str, agent: str, owner: str, token: str,
                     ttl_s: float) -> None:
    """Keep what task call ``call_sid`` is for, for whichever worker gets its stream."""
    value = {"task": task, "agent": agent, "owner": owner, "token": token}
    await live.put_value(VALUE_KEY + call_sid, json.dumps(value), ttl_s)


def _read_task(raw: str | None) -> dict[str, str] | None:
    """A shared task as read from the live state, checked field by field; None if it is not one."""
    if not isinstance(raw, str) or len(raw) > 4 * (MAX_TASK_CHARS + 3 * MAX_NAME_CHARS):
        return None
    with contextlib.suppress(ValueError):
        value = json.loads(raw)
        if isinstance(value, dict):
            task = _text(value.get("task"), MAX_TASK_CHARS)
            agent, owner = _text(value.get("agent"), MAX_NAME_CHARS), _text(value.get("owner"), MAX_NAME_CHARS)
            token = value.get("token")
            if task and agent and owner and isinstance(token, str) and _TOKEN.fullmatch(token):
                return {"task": task, "agent": agent, "owner": owner, "token": token}
    return None


async def adopt_shared_task(host: Any, session: Any, call_id: str, agent: str) -> bool:
    """Call ``call_id`` runs here with ``agent``: if another worker placed it as a task
    call, give the agent its task and send the outcome back when it ends. True if so."""
    if call_id in _pending:  # placed here: adopted already (adopt_task_call)
        return False
    try:
        raw = await host.live.take_value(VALUE_KEY + call_id)
    except Exception as e:  # no task to give: the call runs as an ordinary one
        log.warning("%s shared task not read: %s", _sid_for_log(call_id), type(e).__name__)
        return False
    if raw is None:
        return False
    shared = _read_task(raw)
    if shared is None or shared["agent"] != agent:
        log.warning("%s shared task ignored: not a valid task for this call's agent", _sid_for_log(call_id))
        return False
    owner, token = shared["owner"], shared["token"]

    async def finished(outcome: dict[str, Any]) -> None:
        message = {"kind": "task_outcome", "call_sid": call_id, "token": token}
        for name in OUTCOME_FIELDS:
            if outcome.get(name) is not None:
                message[name] = str(outcome[name])[:MAX_FIELD_CHARS]
        try:
            await host.live.send(owner, message)
        except Exception as e:  # the dialler waits out its timeout
            log.warning("%s task outcome not sent: %s", _sid_for_log(call_id), type(e).__name__)

    give_task(session, shared["task"], finished)
    log.info("%s task call placed by another worker: adopted", _sid_for_log(call_id))
    return True


def outcome_message(message: dict[str, Any]) -> bool:
    """A task call's outcome another worker sent here: resolves the dial waiting on it,
    once. True if it did; anything else is logged (without its contents) and ignored."""
    call_sid, token = message.get("call_sid"), message.get("token")
    pending = _pending.get(call_sid) if isinstance(call_sid, str) else None
    if pending is None or not isinstance(token, str) or token != pending.token:
        log.warning("%s task outcome ignored: no task call here waits for it", _sid_for_log(call_sid))
        return False
    outcome = {name: message[name] for name in OUTCOME_FIELDS if name in message}
    if _text(outcome.get("status"), MAX_NAME_CHARS) is None or not all(
            _text(v, MAX_FIELD_CHARS) is not None for v in outcome.values()):
        log.warning("%s task outcome ignored: malformed", _sid_for_log(call_sid))
        return False
    if pending.done.done():
        log.warning("%s task outcome ignored: the call has its outcome already", _sid_for_log(call_sid))
        return False
    pending.done.set_result(outcome)
    return True
