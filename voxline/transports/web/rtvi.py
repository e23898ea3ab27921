"""RTVI for the widget: captions and state out, almost nothing in.

Phone calls run without RTVI. A web call hands the host this processor and the
observer's parameters; Pipecat's pipeline worker puts the processor at the head of
the pipeline, adds its observer and answers ``client-ready`` with ``bot-ready``.
(A processor placed in the pipeline by hand has no observer when the worker is
built, and the worker logs an error for it.)

What a public page gets is limited on purpose: no metrics, no LLM text (it can
carry tool calls), no user context, no function-call events. From the page only
``client-ready`` and ``disconnect-bot`` are taken -- typed text, context edits and
client messages would let a page script steer the agent past what a visitor can say.

Server messages of our own carry ``{"voxline": KIND, ...}``: ``heard`` (what the
visitor heard of the agent's line, see :mod:`.line`) and ``handoff``
(:func:`handoff_message`).
"""

from __future__ import annotations

import logging
import re

import pipecat.processors.frameworks.rtvi.models as RTVI
from pipecat.processors.frameworks.rtvi import RTVIObserverParams, RTVIProcessor
from pipecat.processors.frameworks.rtvi.observer import RTVIFunctionCallReportLevel

log = logging.getLogger("voxline.web")

ACCEPTED = frozenset({"client-ready", "disconnect-bot"})
HANDOFF_STATUSES = frozenset({"requested"})
MAX_TARGET_CHARS = 64
MAX_MESSAGE_CHARS = 400
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def handoff_message(status: str, *, target: str, message: str) -> dict[str, str]:
    """What the widget is told when a person has the visitor's request.

    ``{"voxline": "handoff", "status": "requested", "target": LABEL, "message": TEXT}``:
    ``target`` is the label of the spec's ``humans.targets`` entry, ``message`` the
    spec's ``humans.requested`` sentence (what the agent says). Nothing the visitor said
    goes in -- no reason, summary or transcript; the text is the spec's, with control
    characters dropped and its length capped, and the widget shows it as text, never
    as markup.
    """
    if status not in HANDOFF_STATUSES:
        raise ValueError(f"unknown handoff status: {status[:40]!r}")
    return {"voxline": "handoff", "status": status,
            "target": _CONTROL.sub("", target)[:MAX_TARGET_CHARS],
            "message": _CONTROL.sub("", message).strip()[:MAX_MESSAGE_CHARS]}


def public_observer_params() -> RTVIObserverParams:
    return RTVIObserverParams(
        bot_llm_enabled=False,
        user_llm_enabled=False,
        metrics_enabled=False,
        system_logs_enabled=False,
        function_call_report_level={"*": RTVIFunctionCallReportLevel.DISABLED},
    )


class WidgetRTVI(RTVIProcessor):
    """Pipecat's RTVI processor that refuses every client message but two."""

    async def _handle_message(self, message: RTVI.Message, user_id: str | None = None) -> None:
        if message.type not in ACCEPTED:
            await self._send_error_response(message.id, f"'{message.type[:40]}' is not accepted here")
            return
        await super()._handle_message(message, user_id)
