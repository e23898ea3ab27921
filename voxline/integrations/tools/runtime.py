"""Running tools inside a call, with guardrails.

Every tool call is validated against the function's signature, bounded by its
timeout, guarded by the call's rate limits and cost cap (guard.py), and recorded.
When a tool fails, times out, gets bad arguments, or does not
exist, the caller hears a sensible sentence and the call goes on; the LLM is not
re-run on a failure, so a confused model cannot loop on a broken tool.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from pipecat.frames.frames import FunctionCallResultProperties, TTSSpeakFrame
from pipecat.services.llm_service import FunctionCallParams

from voxline.errors import ToolError
from voxline.integrations.tools.guard import STALE, ToolGuard, result_problem
from voxline.integrations.tools.loader import Tool
from voxline.integrations.tools.settings import ToolConfig
from voxline.processors.call_log import CallLog, ToolCallRecord
from voxline.spec import ToolSpec

logger = logging.getLogger("voxline.tools")

UNKNOWN_TOOL_SAY = "Sorry, I can't help with that one."
_NO_RERUN = FunctionCallResultProperties(run_llm=False)


class CallControl(Protocol):
    """What built-in tools may do to the call (implemented by CallSession)."""

    call_id: str

    async def end(self, reason: str) -> None: ...


def _jsonable(value: Any) -> Any:
    if isinstance(value, Told):
        return value
    if hasattr(value, "model_dump"):
        return value.model_dump()
    return value


class Told(dict):  # type: ignore[type-arg]
    """A tool's result that the tool already told the caller: the LLM is not run on it."""


def make_handler(tool: Tool, log: CallLog, config: ToolConfig | None = None) -> Any:
    """The handler of a tool of the spec (Python, webhook or MCP): guarded (see guard.py),
    timed, recorded; ``config``: its tenant's settings and secrets (settings.py)."""
    if config is None:
        return guarded(tool.spec, tool.call, log)
    return guarded(tool.spec, lambda arguments: tool.call(arguments, config), log)


def guarded(spec: ToolSpec, run: Callable[[dict[str, Any]], Awaitable[Any]], log: CallLog) -> Any:
    """A handler that runs ``run(arguments)`` under the call's ToolGuard: refused (a sentence
    said, the refusal recorded) over a rate limit or the cost cap; its result checked
    against ``spec.returns``; cancelled on barge-in, and a result that comes back after
    the caller barged in is recorded but never spoken."""

    async def handler(params: FunctionCallParams) -> None:
        guard = ToolGuard.of(log)
        record = ToolCallRecord(name=spec.name, arguments=dict(params.arguments or {}))
        started, epoch = time.monotonic(), guard.epoch
        log.tools_running += 1
        try:
            refusal = await guard.admit(spec)
            if refusal is not None:
                record.error, say = refusal
                logger.info("tool %s refused: %s", spec.name, record.error)
                await params.llm.push_frame(TTSSpeakFrame(say))
                await params.result_callback({"error": record.error}, properties=_NO_RERUN)
                return
            record.result = _jsonable(await run(record.arguments))
            problem = result_problem(spec.returns, record.result)
            if problem is not None:
                raise ToolError(problem)
            if guard.epoch != epoch:  # the caller barged in while it ran: nothing to say now
                record.error = STALE
                await params.result_callback(record.result, properties=_NO_RERUN)
                return
            await params.result_callback(record.result,
                                         properties=_NO_RERUN if isinstance(record.result, Told) else None)
        except asyncio.CancelledError:
            record.error = STALE
            raise
        except Exception as e:  # user code: anything can go wrong, the call must not
            record.error = str(e) if isinstance(e, ToolError) else f"{type(e).__name__}: {e}"
            logger.warning("tool %s failed: %s", spec.name, record.error)
            if guard.epoch == epoch:
                await params.llm.push_frame(TTSSpeakFrame(spec.say_on_error))
            await params.result_callback({"error": record.error}, properties=_NO_RERUN)
        finally:
            log.tools_running -= 1
            record.duration_ms = round((time.monotonic() - started) * 1000, 1)
            log.tool_call(record)

    return handler


def make_unknown_handler(log: CallLog) -> Any:
    async def handler(params: FunctionCallParams) -> None:
        log.tool_call(ToolCallRecord(name=params.function_name, arguments=dict(params.arguments or {}),
                                     error="unknown tool"))
        logger.warning("LLM called unknown tool %r", params.function_name)
        await params.llm.push_frame(TTSSpeakFrame(UNKNOWN_TOOL_SAY))
        await params.result_callback({"error": "unknown tool"}, properties=_NO_RERUN)

    return handler


def make_end_call_handler(log: CallLog, default_goodbye: str) -> Any:
    """The built-in ``end_call`` tool: say goodbye, then end once it has been played."""

    async def end_call(params: FunctionCallParams) -> None:
        control: CallControl = params.app_resources
        goodbye = str((params.arguments or {}).get("goodbye") or default_goodbye)
        log.tool_call(ToolCallRecord(name="end_call", arguments=dict(params.arguments or {}),
                                     result="ended"))
        await params.llm.push_frame(TTSSpeakFrame(goodbye))
        await params.result_callback("ended", properties=_NO_RERUN)
        await control.end("agent_ended")

    return end_call
