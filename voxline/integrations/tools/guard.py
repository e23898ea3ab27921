"""A call's tool policy: rate limits, the cost cap, result schemas, barge-in staleness.

One :class:`ToolGuard` per call (it hangs off the call's :class:`CallLog`, which every
tool handler already has). Before a tool runs, :meth:`ToolGuard.admit` says whether it
may: ``rate_limit.per_call`` is counted here, ``rate_limit.per_tenant_per_minute`` in
the call host's live state (Redis when configured, so every worker shares the count),
and ``limits.max_cost_usd`` against what the call has cost so far (the providers' usage
priced by :mod:`voxline.pricing` plus the tools' ``cost_usd``). A refusal is a sentence
the caller hears and an error recorded on the tool call. After a tool ran, its result
is checked against its ``returns`` schema.

A tool call is *stale* when the caller barged in after it started: its result must not
be spoken. Tools are registered with ``cancel_on_interruption=True`` (Pipecat cancels
the handler); :attr:`ToolGuard.epoch` (bumped by the call log on every interruption)
also catches a result that lands between the interruption and the cancellation.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from voxline.memory.live import InProcessLiveState, LiveState

log = logging.getLogger("voxline.tools")

RATE_WINDOW_SECS = 60.0
STALE = "cancelled: the caller interrupted"


class ToolGuard:
    def __init__(self, call_log: Any, *, max_cost_usd: float | None = None,
                 say_over_budget: str = "I'm sorry, I can't do any more of that on this call.") -> None:
        self._log = call_log
        self.max_cost_usd = max_cost_usd
        self.say_over_budget = say_over_budget
        self.counts: Counter[str] = Counter()
        self.tool_cost_usd = 0.0
        # Set by the call host: the live state shared by its workers and the call's tenant.
        self.live: LiveState = InProcessLiveState()
        self.tenant = "default"

    @classmethod
    def of(cls, call_log: Any, spec: Any = None) -> ToolGuard:
        """The call's guard (created on first use, with the first spec's limits)."""
        guard = getattr(call_log, "guard", None)
        if guard is None:
            limits = getattr(spec, "limits", None)
            guard = cls(call_log, max_cost_usd=getattr(limits, "max_cost_usd", None),
                        **({"say_over_budget": limits.say_over_budget} if limits is not None else {}))
            call_log.guard = guard
        return guard

    def use_live(self, live: LiveState, tenant: str) -> None:
        self.live, self.tenant = live, tenant

    @property
    def epoch(self) -> int:
        return int(getattr(self._log, "interruptions", 0))

    def spent_usd(self) -> float:
        from voxline.pricing import cost

        total = self.tool_cost_usd
        for turn in getattr(self._log, "turns", []):
            if turn.usage:
                total += cost(turn.usage, turn.providers)[0]
        return total

    async def admit(self, tool: Any) -> tuple[str, str] | None:
        """None if ``tool`` (its ToolSpec) may run now, else (reason recorded, sentence said)."""
        name = tool.name
        limit = getattr(tool, "rate_limit", None)
        if limit is not None and limit.per_call is not None and self.counts[name] >= limit.per_call:
            return f"rate limited: {limit.per_call} call(s) per call", tool.say_on_limit
        if limit is not None and limit.per_tenant_per_minute is not None:
            try:
                allowed = await self.live.hit_rate(self.tenant, f"tool:{name}", limit.per_tenant_per_minute,
                                                   RATE_WINDOW_SECS)
            except Exception as e:  # the shared state is down: refuse rather than run unbounded
                log.warning("tool %s rate check failed: %s", name, type(e).__name__)
                allowed = False
            if not allowed:
                return (f"rate limited: {limit.per_tenant_per_minute} call(s) per minute for the tenant",
                        tool.say_on_limit)
        if self.max_cost_usd is not None:
            spent = self.spent_usd()
            if spent + float(getattr(tool, "cost_usd", 0.0) or 0.0) > self.max_cost_usd:
                return f"over budget: ${spent:.4f} of ${self.max_cost_usd:.4f} spent", self.say_over_budget
        self.counts[name] += 1
        self.tool_cost_usd += float(getattr(tool, "cost_usd", 0.0) or 0.0)
        return None


def result_problem(schema: dict[str, Any] | None, result: Any) -> str | None:
    """Why ``result`` does not match the tool's ``returns`` schema, or None."""
    if schema is None:
        return None
    import jsonschema

    try:
        jsonschema.validate(result, schema)
    except jsonschema.ValidationError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "result"
        return f"result does not match its schema: {where}: {e.message}"[:300]
    except jsonschema.SchemaError as e:
        return f"invalid returns schema: {e.message}"[:300]
    return None
