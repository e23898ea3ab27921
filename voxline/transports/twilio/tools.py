"""`end_call` and `transfer_call` tool handlers for a live Twilio call.

Both follow the same order: tell the caller, wait until Twilio echoes the mark of the
last chunk of that speech (the caller heard it), then act over REST. Neither acts if
the generation that asked for it was interrupted. Two guards: they are registered
with ``cancel_on_interruption=True`` (pipecat cancels the handler, and an interrupted
generation never starts it), and before acting they compare the ledger's barge-in
epoch with the one seen when the handler started -- a barge-in that lands while we
wait for the goodbye to play cannot slip through a cancellation race.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.frames.frames import FunctionCallResultProperties, TTSSpeakFrame
from pipecat.services.llm_service import FunctionCallParams

from voxline.errors import ProviderError

from .config import redact_number
from .rest import TwilioRestClient

if TYPE_CHECKING:
    from .session import TwilioCall

log = logging.getLogger("voxline.twilio")

_NO_LLM = FunctionCallResultProperties(run_llm=False)


class CallControl:
    def __init__(
        self,
        call: TwilioCall,
        rest: TwilioRestClient | None,
        *,
        goodbye: str = "Thank you for calling. Goodbye!",
        transfer_message: str = "Please hold while I transfer your call.",
        transfer_targets: Sequence[str] = (),
        speech_timeout_secs: float = 15.0,
    ) -> None:
        self._call = call
        self._rest = rest
        self.goodbye = goodbye
        self.transfer_message = transfer_message
        self.transfer_targets = tuple(transfer_targets)
        self.speech_timeout_secs = speech_timeout_secs

    # -- schemas the LLM sees --------------------------------------------------
    def schemas(self) -> list[FunctionSchema]:
        end = FunctionSchema(
            name="end_call",
            description="Say goodbye and hang up when the conversation is finished.",
            properties={"goodbye": {"type": "string", "description": "Last sentence to say."}},
            required=[],
        )
        transfer = FunctionSchema(
            name="transfer_call",
            description="Transfer the caller to a human.",
            properties={"target": {"type": "string", "enum": list(self.transfer_targets)}}
            if self.transfer_targets else {},
            required=[],
        )
        return [end, transfer]

    def register(self, llm: Any) -> None:
        llm.register_function("end_call", self.end_call, cancel_on_interruption=True)
        llm.register_function("transfer_call", self.transfer_call, cancel_on_interruption=True)

    # -- handlers --------------------------------------------------------------
    async def end_call(self, params: FunctionCallParams) -> None:
        call, epoch = self._call, self._generation_epoch()
        text = str(params.arguments.get("goodbye") or self.goodbye)
        if not await self._say_and_wait(params, text, epoch):
            await params.result_callback({"status": "not ended: caller interrupted"}, properties=_NO_LLM)
            return
        if not await self._rest_action("hang-up", lambda r: r.hang_up(call.call_id)):
            # Reported to the LLM; the stream ending will still end a <Connect> call.
            await params.result_callback({"error": "hang-up failed"}, properties=_NO_LLM)
            return
        call.end_reason = "agent_hung_up"
        await call.records.close(call.call_id, reason="agent_hung_up", stats=call.stats())
        await params.result_callback({"status": "call ended"}, properties=_NO_LLM)

    async def transfer_call(self, params: FunctionCallParams) -> None:
        call, epoch = self._call, self._generation_epoch()
        target = str(params.arguments.get("target") or (self.transfer_targets[:1] or [""])[0])
        if not target or (self.transfer_targets and target not in self.transfer_targets):
            await params.result_callback({"error": "no such transfer target"})
            return
        if not await self._say_and_wait(params, self.transfer_message, epoch):
            await params.result_callback({"status": "not transferred: caller interrupted"}, properties=_NO_LLM)
            return
        ok = await self._rest_action("transfer", lambda r: r.transfer(call.call_id, target))
        if not ok:
            await params.result_callback({"error": "transfer failed"})
            return
        call.end_reason = "transferred"
        await call.records.set_transfer(call.call_id, target)
        await call.records.close(call.call_id, reason="transferred", stats=call.stats())
        log.info("%s transferred to %s", call.call_id, redact_number(target))
        await params.result_callback({"status": "transferred"}, properties=_NO_LLM)

    # -- helpers ---------------------------------------------------------------
    def _generation_epoch(self) -> int:
        return self._call.ledger.epoch

    def _interrupted(self, epoch: int) -> bool:
        return self._call.ledger.epoch != epoch

    async def _say_and_wait(self, params: FunctionCallParams, text: str, epoch: int) -> bool:
        """Speak ``text``; True once it was heard, False if the caller barged in."""
        call = self._call
        if self._interrupted(epoch):
            log.info("%s tool %s skipped: its generation was interrupted", call.call_id, params.function_name)
            return False
        since = call.heard.heard_count
        await params.llm.push_frame(TTSSpeakFrame(text))
        heard = await call.heard.wait_heard(text, since=since, timeout=self.speech_timeout_secs)
        if self._interrupted(epoch):
            log.info("%s tool %s skipped: caller interrupted", call.call_id, params.function_name)
            return False
        if not heard:
            log.warning("%s tool %s: speech not confirmed played; acting anyway", call.call_id, params.function_name)
        return True

    async def _rest_action(self, label: str, action: Any) -> bool:
        call = self._call
        if self._rest is None:
            log.warning("%s %s: no REST client configured", call.call_id, label)
            return False
        try:
            await action(self._rest)
            return True
        except ProviderError as e:
            log.error("%s %s failed (%s): %s", call.call_id, label,
                      "retryable" if e.retryable else "permanent", e)
            return False
