"""Call control for any transport: the `end_call` and `transfer_call` tools, hang-ups.

A transport supplies a :class:`CallLine` (Twilio: marks and REST; SIP: RTP sent and
BYE/REFER); this module decides *when* to act. Both tools follow the same order: tell
the caller, wait until the line confirms that speech was played (the caller heard
it), then act on the line. Neither acts if
the generation that asked for it was interrupted. Two guards: they are registered
with ``cancel_on_interruption=True`` (pipecat cancels the handler, and an interrupted
generation never starts it), and before acting they compare the ledger's barge-in
epoch with the one seen when the handler started -- a barge-in that lands while we
wait for the goodbye to play cannot slip through a cancellation race.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.frames.frames import FunctionCallResultProperties, TTSSpeakFrame
from pipecat.services.llm_service import FunctionCallParams

from voxline.errors import ProviderError
from voxline.logsafe import redact_number

log = logging.getLogger("voxline.calls")

_NO_LLM = FunctionCallResultProperties(run_llm=False)

OnEnd = Callable[[str], Awaitable[None]]  # end the pipeline with this reason
OnTransfer = Callable[[str], Awaitable[None]]  # the call was handed to this target
ToolLog = Callable[[str, dict[str, Any], Any], None]  # name, arguments, result


class CallLine(Protocol):
    """What call control needs from a transport's live call."""

    call_id: str

    @property
    def epoch(self) -> int:
        """Bumped on every barge-in: a tool compares it before acting."""

    @property
    def heard_count(self) -> int: ...

    async def wait_heard(self, text: str, *, since: int, timeout: float) -> bool:
        """True once ``text`` (spoken after ``since`` lines) was played to the caller."""

    async def hang_up(self) -> None:
        """End the call on the carrier's side; raises ProviderError."""

    async def transfer(self, target: str) -> None:
        """Hand the caller to ``target`` (a number or SIP address); raises ProviderError."""


class CallControl:
    def __init__(
        self,
        line: CallLine,
        *,
        goodbye: str = "Thank you for calling. Goodbye!",
        transfer_message: str = "Please hold while I transfer your call.",
        transfer_targets: Mapping[str, str] | None = None,
        speech_timeout_secs: float = 15.0,
        on_end: OnEnd | None = None,
        on_transfer: OnTransfer | None = None,
        tool_log: ToolLog | None = None,
    ) -> None:
        self._line = line
        self.goodbye = goodbye
        self.transfer_message = transfer_message
        # label -> number or SIP address. The LLM only ever picks a label: a target
        # number never comes from the model (toll fraud), only from configuration.
        self.transfer_targets: dict[str, str] = dict(transfer_targets or {})
        self.speech_timeout_secs = speech_timeout_secs
        # Set by the call host: how to end the pipeline once the call is over on the
        # carrier's side, what to record on a transfer, where tool calls are logged.
        self.on_end = on_end
        self.on_transfer = on_transfer
        self.tool_log = tool_log
        self.end_reason: str | None = None

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
        epoch = self._line.epoch
        text = str((params.arguments or {}).get("goodbye") or self.goodbye)
        if not await self._say_and_wait(params, text, epoch):
            await self._result(params, {"status": "not ended: caller interrupted"}, _NO_LLM)
            return
        if not await self._line_action("hang-up", self._line.hang_up):
            # Reported; ending the pipeline below still closes the media, which ends the call.
            await self._result(params, {"error": "hang-up failed"}, _NO_LLM)
        else:
            await self._result(params, {"status": "call ended"}, _NO_LLM)
        await self._ended("agent_hung_up")

    async def transfer_call(self, params: FunctionCallParams) -> None:
        line, epoch = self._line, self._line.epoch
        labels = list(self.transfer_targets)
        label = str((params.arguments or {}).get("target") or (labels[0] if len(labels) == 1 else ""))
        target = self.transfer_targets.get(label)
        if not target:
            await self._result(params, {"error": "no such transfer target", "targets": labels}, None)
            return
        if not await self._say_and_wait(params, self.transfer_message, epoch):
            await self._result(params, {"status": "not transferred: caller interrupted"}, _NO_LLM)
            return
        ok = await self._line_action("transfer", lambda: line.transfer(target))
        if not ok:
            await self._result(params, {"error": "transfer failed"}, None)
            return
        if self.on_transfer is not None:
            await self.on_transfer(target)
        log.info("%s transferred to %s (%s)", line.call_id, label, redact_number(target))
        await self._result(params, {"status": "transferred"}, _NO_LLM)
        await self._ended("transferred")  # the carrier now bridges the target; our media is done

    async def hang_up(self, reason: str) -> bool:
        """End the call now (no goodbye) with ``reason``."""
        ok = await self._line_action("hang-up", self._line.hang_up)
        await self._ended(reason)
        return ok

    async def _ended(self, reason: str) -> None:
        self.end_reason = self.end_reason or reason
        if self.on_end is not None:
            await self.on_end(reason)

    # -- helpers ---------------------------------------------------------------
    async def _result(self, params: FunctionCallParams, result: dict[str, Any],
                      properties: FunctionCallResultProperties | None) -> None:
        if self.tool_log is not None:
            self.tool_log(params.function_name, dict(params.arguments or {}), result)
        await params.result_callback(result, properties=properties)

    def _interrupted(self, epoch: int) -> bool:
        return self._line.epoch != epoch

    async def _say_and_wait(self, params: FunctionCallParams, text: str, epoch: int) -> bool:
        """Speak ``text``; True once it was heard, False if the caller barged in."""
        call = self._line
        if self._interrupted(epoch):
            log.info("%s tool %s skipped: its generation was interrupted", call.call_id, params.function_name)
            return False
        since = call.heard_count
        await params.llm.push_frame(TTSSpeakFrame(text))
        heard = await call.wait_heard(text, since=since, timeout=self.speech_timeout_secs)
        if self._interrupted(epoch):
            log.info("%s tool %s skipped: caller interrupted", call.call_id, params.function_name)
            return False
        if not heard:
            log.warning("%s tool %s: speech not confirmed played; acting anyway", call.call_id, params.function_name)
        return True

    async def _line_action(self, label: str, action: Callable[[], Awaitable[None]]) -> bool:
        try:
            await action()
            return True
        except ProviderError as e:
            log.error("%s %s failed (%s): %s", self._line.call_id, label,
                      "retryable" if e.retryable else "permanent", e)
            return False
