"""How many calls may run at once: per worker, per tenant and per agent.

The worker cap protects one process (its event loop and memory); tenant and agent
caps are shared by every worker through the live state (Redis with ``REDIS_URL``),
so a deployment of any size holds the same caps. Over a cap, a phone caller hears a
short busy message and the API answers 429 (tenant, agent) or 503 (the server).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from voxline.spec import AgentSpec

WORKER_ENV = "VOXLINE_MAX_CALLS_PER_WORKER"
TENANT_ENV = "VOXLINE_MAX_CALLS_PER_TENANT"


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name} must be a positive whole number, not {value!r}")
    return int(value)


@dataclass(frozen=True)
class CallLimits:
    max_calls_per_worker: int = 100
    max_calls_per_tenant: int | None = None
    slot_ttl_secs: float = 30.0  # a live call's slot; refreshed by its worker's heartbeat
    reserve_secs: float = 60.0  # a slot taken at the webhook, until the media starts
    results_kept: int = 200  # finished calls' results kept for inspection
    busy_message: str = "Sorry, all our lines are busy right now. Please call again later."

    @classmethod
    def from_env(cls, **overrides: object) -> CallLimits:
        values: dict[str, object] = {}
        worker, tenant = _env_int(WORKER_ENV), _env_int(TENANT_ENV)
        if worker is not None:
            values["max_calls_per_worker"] = worker
        if tenant is not None:
            values["max_calls_per_tenant"] = tenant
        return cls(**{**values, **overrides})  # type: ignore[arg-type]

    def caps(self, spec: AgentSpec) -> list[tuple[str, int]]:
        """(live-state key, cap) of every shared cap a call of ``spec`` counts in."""
        tenant = spec.memory.tenant
        caps: list[tuple[str, int]] = []
        if self.max_calls_per_tenant is not None:
            caps.append((f"tenant:{tenant}", self.max_calls_per_tenant))
        if spec.limits.max_concurrent_calls is not None:
            caps.append((f"agent:{tenant}/{spec.name}", spec.limits.max_concurrent_calls))
        return caps
