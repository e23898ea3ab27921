"""Fixtures: a call host on a fresh SQLite store, the SIP endpoint on 127.0.0.1, SIPp's folder."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.phone.kit import AgentScript, fake_services, write_agents
from voxline.memory.records import CallRecord
from voxline.pipelines.host import CallHost, ServicesFactory
from voxline.routing import load_agents, load_routes
from voxline.transports.sip import SipConfig, SipServer, start_sip
from voxline.transports.sip.config import parse_allow, parse_users

from .kit import NUMBER, SippRun, prepare_workdir, run_sipp
from .peers import UdpPeer

if shutil.which("sipp") is None:  # `make system-deps` installs it (Debian sip-tester)
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise RuntimeError("SIPp is not installed (CI=true: the SIP tests must run)")
    pytest.skip("SIPp is not installed (apt-get install sip-tester)", allow_module_level=True)

TRANSFER = {"front desk": "+15550002222"}


@dataclass
class SipRig:
    host: CallHost
    server: SipServer
    workdir: Path

    @property
    def port(self) -> int:
        return self.server.address[1]

    async def sipp(self, scenario: str, *args: str, **options: Any) -> SippRun:
        return await run_sipp(scenario, self.port, self.workdir, *args, **options)

    async def calls(self) -> list[CallRecord]:
        """Every call the store holds for the test agent, newest first."""
        assert self.host.memory is not None
        tenant = self.host.agents["restaurant"].memory.tenant
        return await self.host.memory.store.list_calls(tenant, agent="restaurant", limit=500)

    async def only_call(self, timeout: float = 20.0) -> CallRecord:
        await self.host.settle()
        records = await self.calls()
        assert len(records) == 1, records
        assert self.host.records is not None
        record = await self.host.records.wait_closed(records[0].id, timeout)
        assert record is not None
        return record


RigFactory = Callable[..., Awaitable[SipRig]]


@pytest.fixture(scope="session")
def sipp_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_workdir(tmp_path_factory.mktemp("sipp"))


@pytest.fixture
async def sip_rig(tmp_path: Path, sipp_workdir: Path) -> AsyncIterator[RigFactory]:
    rigs: list[SipRig] = []

    async def make(script: AgentScript | None = None, *, services: ServicesFactory | None = None,
                   allow: str = "127.0.0.1/32", users: str = "", spec: dict | None = None,
                   **config: Any) -> SipRig:
        script = script or AgentScript()
        agents_dir = write_agents(tmp_path / f"agents{len(rigs)}", script,
                                  {"numbers": {NUMBER: "restaurant"}, "transfer": {"restaurant": TRANSFER}})
        if spec:  # e.g. real providers for the agent
            path = agents_dir / "restaurant" / "agent.yaml"
            path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), **spec}))
        agents = load_agents(agents_dir)
        routes = load_routes(agents_dir, agents)
        host = CallHost(agents, transfer_targets=routes.transfer, services=services or fake_services(script),
                        recording_dir=tmp_path / "recordings")
        await host.start(str(tmp_path / f"voxline{len(rigs)}.db"))
        options = {"rtp_ports": (30000, 31000), "media_timeout_secs": 10.0, **config}
        sip_config = SipConfig(host="127.0.0.1", port=0, allow=parse_allow(allow), users=parse_users(users),
                               **options)
        server = await start_sip(host, routes.numbers, config=sip_config)
        rig = SipRig(host, server, sipp_workdir)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        await rig.server.close()
        await rig.host.close()


@pytest.fixture
async def peer() -> AsyncIterator[UdpPeer]:
    """A hand-written SIP peer on a UDP socket of its own."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(UdpPeer, local_addr=("127.0.0.1", 0))
    yield protocol
    transport.close()
