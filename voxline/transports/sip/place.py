"""``voxline call --via sip``: place one call through the trunk from this process.

No server is needed: the agents folder is loaded here, the call host opens the call
store (``$DATABASE_URL``), a SIP endpoint binds an ephemeral port (or ``bind``), and
the INVITE goes out through ``VOXLINE_SIP_TRUNK`` (else the ``VOXLINE_SIP_REGISTER``
account). The answer is the outcome once the call is over.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from voxline.errors import MissingSecretError, VoxlineError
from voxline.pipelines.host import CallHost, ServicesFactory, default_services
from voxline.pipelines.limits import CallLimits
from voxline.routing import load_agents, load_routes

from .config import REGISTER_ENV, TRUNK_ENV
from .server import start_sip


async def call_via_sip(to: str, agent: str, *, agents_dir: Path, from_: str | None = None,
                       bind: str = "0.0.0.0:0", database_url: str | None = None,
                       services: ServicesFactory = default_services, **options: Any) -> dict[str, Any]:
    agents = load_agents(agents_dir)
    if agent not in agents:
        raise VoxlineError(f"unknown agent {agent!r} in {agents_dir}")
    routes = load_routes(agents_dir, agents)
    host = CallHost(agents, transfer_targets=routes.transfer, services=services, limits=CallLimits.from_env())
    await host.start(database_url or os.environ.get("DATABASE_URL"))
    try:
        server = await start_sip(host, routes.numbers, bind=bind, **options)
        try:
            if server.dialer is None:
                raise MissingSecretError(f"{TRUNK_ENV} (or {REGISTER_ENV}) is not set: no trunk to call through")
            outcome = await server.dialer.dial(agent=agent, to=to, from_=from_ or routes.caller_id_for(agent))
        finally:
            await server.close()
        await host.settle()
    finally:
        await host.close()
    result = outcome.result
    return {"call_id": outcome.call_id, "status": outcome.status, "sip_status": outcome.sip_status,
            "agent": agent, "turns": len(result.turns) if result is not None else 0}
