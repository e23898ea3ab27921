"""The call records every transport writes: one store (the memory store) for all channels.

A transport announces a call before its media starts (a Twilio webhook: ``ringing``,
an outbound call: ``queued``), moves its telephony state as the carrier reports it,
and the call host closes it with the reason the call ended. Turns, tool calls and
latencies are written by :class:`~voxline.pipelines.call_memory.CallMemory` into the
same row. Nothing is kept in process: a status callback that another worker receives
finds the call in the shared store.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from voxline.memory.recorder import CallRecorder
from voxline.memory.records import CallRecord
from voxline.memory.store import Store
from voxline.memory.types import utcnow

log = logging.getLogger("voxline.records")

# How a call's end reason maps onto its stored status.
_STATUS_BY_REASON = {
    "dropped": "dropped",
    "failed": "failed",
    "error": "failed",
    "pipeline_error": "failed",
    "busy": "busy",
    "no-answer": "no-answer",
    "canceled": "canceled",
}

CARRIER_FINAL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})


def status_for(reason: str) -> str:
    return _STATUS_BY_REASON.get(reason, "completed")


class CallRecords:
    """Announce, update and close call rows in the store; read them back."""

    def __init__(self, store: Store, recorder: CallRecorder | None = None) -> None:
        self.store = store
        self.recorder = recorder  # the writer of the calls' turns, when they are recorded

    async def announce(
        self, call_id: str, *, tenant: str, agent: str, channel: str, direction: str,
        from_: str | None, to: str | None, status: str,
    ) -> None:
        """A call that is coming (ringing) or being placed (queued); no caller yet."""
        await self.store.start_call(
            tenant, call_id=call_id, channel=channel, direction=direction, from_=from_, to=to,
            agent=agent, caller_key=None, model_versions={}, status=status,
        )

    async def set_state(self, call_id: str, state: str, *, answered_by: str | None = None) -> bool:
        """The carrier's word on a call (Twilio status callback); False if unknown here."""
        return await self.store.set_call_state(call_id, status=state, answered_by=answered_by)

    async def set_transfer(self, call_id: str, target: str) -> None:
        await self.store.set_call_state(call_id, transfer_to=target)

    async def close(self, call_id: str, *, reason: str, stats: dict[str, Any] | None = None) -> None:
        """Close the row; the first close wins. Never raises: a call must always end.

        The close is queued behind the call's last turns and tool calls (the recorder
        writes in order): a row seen closed holds everything the call said and did."""
        fields = {"status": status_for(reason), "end_reason": reason, "ended_at": utcnow(),
                  "transport_stats": stats}
        if self.recorder is not None and self.recorder.end_call(call_id, **fields):
            return
        try:
            await self.store.end_call(call_id, **fields)
        except Exception as e:  # the store is down: the startup sweep closes it later
            log.error("%s closing the call record failed: %s", call_id, type(e).__name__)

    async def get(self, call_id: str) -> CallRecord | None:
        return await self.store.find_call(call_id)

    async def wait_closed(self, call_id: str, timeout: float) -> CallRecord | None:
        """Wait until the call row is closed (tests, operations)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            record = await self.get(call_id)
            if record is not None and record.ended_at is not None:
                return record
            if loop.time() >= deadline:
                raise TimeoutError(f"call {call_id} still open after {timeout} s")
            await asyncio.sleep(0.05)
