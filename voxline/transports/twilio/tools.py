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
from collections.abc import Awaitable, Callable, Mapping
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

OnEnd = Callable[[str], Awaitable[None]]  # end the pipeline with this reason
ToolLog = Callable[[str, dict[str, Any], Any], None]  # name, arguments, result


class CallControl:
    def __init__(
        self,
        call: TwilioCall,
        rest: TwilioRestClient | None,
        *,
        goodbye: str = "Thank you for calling. Goodbye!",
        transfer_message: str = "Please hold while I transfer your call.",
        transfer_targets: Mapping[str, str] | None = None,
        speech_timeout_secs: float = 15.0,
        on_end: OnEnd | None = None,
        tool_log: ToolLog | None = None,
    ) -> None:
        self._call = call
        self._rest = rest
        self.goodbye = goodbye
        self.transfer_message = transfer_message
        # label -> number or SIP address. The LLM only ever picks a label: a target
        # number never comes from the model (toll fraud), only from configuration.
        self.transfer_targets: dict[str, str] = dict(transfer_targets or {})
        self.speech_timeout_secs = speech_timeout_secs
        # Set by the app: how to end the pipeline once the call is over on Twilio's side,
        # and where tool calls are recorded (the session's call log).
        self.on_end = on_end
        self.tool_log = tool_log

    # -- schemas the LLM sees --------------------------------------------------
    def schemas(self) -> list[FunctionSchema]:
        return [self.end_call_schema(), self.transfer_schema()]

    def end_call_schema(self) -> FunctionSchema:
        return FunctionSchema(
            name="end_call",
            description="Say goodbye and hang up when the conversation is finished.",
            properties={"goodbye": {"type": "string", "description": "Last sentence to say."}},
            required=[],
        )

    def transfer_schema(self) -> FunctionSchema:
        labels = list(self.transfer_targets)
        return FunctionSchema(
            name="transfer_call",
            description="Transfer the caller to a human, after they asked for one.",
            properties={"target": {"type": "string", "enum": labels}} if len(labels) > 1 else {},
            required=[],
        )

    def register(self, llm: Any) -> None:
        llm.register_function("end_call", self.end_call, cancel_on_interruption=True)
        llm.register_function("transfer_call", self.transfer_call, cancel_on_interruption=True)

    # -- handlers --------------------------------------------------------------
    async def end_call(self, params: FunctionCallParams) -> None:
        call, epoch = self._call, self._generation_epoch()
        text = str((params.arguments or {}).get("goodbye") or self.goodbye)
        if not await self._say_and_wait(params, text, epoch):
            await self._result(params, {"status": "not ended: caller interrupted"}, _NO_LLM)
            return
        if not await self._rest_action("hang-up", lambda r: r.hang_up(call.call_id)):
            # Reported; closing the stream below still ends a <Connect><Stream> call.
            await self._result(params, {"error": "hang-up failed"}, _NO_LLM)
        else:
            call.end_reason = "agent_hung_up"
            await call.records.close(call.call_id, reason="agent_hung_up", stats=call.stats())
            await self._result(params, {"status": "call ended"}, _NO_LLM)
        if self.on_end is not None:
            await self.on_end("agent_hung_up")

    async def transfer_call(self, params: FunctionCallParams) -> None:
        call, epoch = self._call, self._generation_epoch()
        labels = list(self.transfer_targets)
        label = str((params.arguments or {}).get("target") or (labels[0] if len(labels) == 1 else ""))
        target = self.transfer_targets.get(label)
        if not target:
            await self._result(params, {"error": "no such transfer target", "targets": labels}, None)
            return
        if not await self._say_and_wait(params, self.transfer_message, epoch):
            await self._result(params, {"status": "not transferred: caller interrupted"}, _NO_LLM)
            return
        ok = await self._rest_action("transfer", lambda r: r.transfer(call.call_id, target))
        if not ok:
            await self._result(params, {"error": "transfer failed"}, None)
            return
        call.end_reason = "transferred"
        await call.records.set_transfer(call.call_id, target)
        await call.records.close(call.call_id, reason="transferred", stats=call.stats())
        log.info("%s transferred to %s (%s)", call.call_id, label, redact_number(target))
        await self._result(params, {"status": "transferred"}, _NO_LLM)
        if self.on_end is not None:
            await self.on_end("transferred")  # Twilio now runs the <Dial>; our stream is done

    async def hang_up(self, reason: str) -> bool:
        """End the call over REST now (no goodbye); the record closes with ``reason``."""
        call = self._call
        ok = await self._rest_action("hang-up", lambda r: r.hang_up(call.call_id))
        if ok:
            call.end_reason = reason
            await call.records.close(call.call_id, reason=reason, stats=call.stats())
        if self.on_end is not None:
            await self.on_end(reason)
        return ok

    # -- helpers ---------------------------------------------------------------
    async def _result(self, params: FunctionCallParams, result: dict[str, Any],
                      properties: FunctionCallResultProperties | None) -> None:
        if self.tool_log is not None:
            self.tool_log(params.function_name, dict(params.arguments or {}), result)
        await params.result_callback(result, properties=properties)

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
