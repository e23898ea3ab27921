"""Fixtures: the real voxline app (``create_app`` + ``mount_platform``) under uvicorn on a
real Postgres, with a fake Twilio REST API; API clients per tenant."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.fakes.twilio_loopback import serve
from tests.fakes.twilio_media import FakeTwilioCall
from tests.fakes.twilio_rest import FakeTwilioRest, stream_of
from tests.phone.kit import AgentScript, fake_services, write_agents
from voxline.api import mount_platform
from voxline.api.secrets import Envelopes, new_master_key
from voxline.api.webhooks import WebhookOptions
from voxline.server import create_app
from voxline.transports.twilio import RetryOptions, TwilioConfig, TwilioRestClient

ACCOUNT = "AC00000000000000000000000000000000"
TOKEN = "test-token"
ADMIN_KEY = "platform-admin-key-0123456789abcdef"
NUMBER = "+15550001111"
DESK = "+15550002222"


@dataclass
class PlatformServer:
    base: str
    app: FastAPI
    rest_fake: FakeTwilioRest
    tmp: Path
    tenant: str  # the tenant of the folder agent ("restaurant")
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def platform(self) -> Any:
        return self.app.state.platform

    @property
    def host(self) -> Any:
        return self.app.state.host

    def client(self, key: str | None = ADMIN_KEY) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.base, headers=headers, timeout=30)

    async def new_tenant(self, name: str | None = None) -> tuple[str, str]:
        """A fresh tenant and its first admin key's token."""
        tenant = f"{name or 't'}-{uuid.uuid4().hex[:8]}"
        async with self.client() as c:
            r = await c.post("/api/v1/tenants", json={"id": tenant, "name": name})
        assert r.status_code == 201, r.text
        return tenant, r.json()["key"]["token"]

    async def incoming(self, call_sid: str, *, from_: str = "+15557654321", to: str = NUMBER,
                       **options: Any) -> FakeTwilioCall:
        response = await self.rest_fake.ring(self.base + "/twilio/voice", call_sid, from_=from_, to=to)
        assert response.status_code == 200, response.text
        url, params = stream_of(response.text)
        return FakeTwilioCall(url, call_sid=call_sid, account_sid=ACCOUNT, parameters=params, **options)


@pytest.fixture
def script() -> AgentScript:
    return AgentScript(greeting="Hello, thanks for calling.", transcripts=["I would like a table for two."],
                       reply=lambda text: "Sure, for what time?")


@pytest.fixture
def platform_options() -> dict:
    return {}


@pytest.fixture
async def platform_server(tmp_path: Path, postgres_url: str, script: AgentScript,
                          platform_options: dict) -> AsyncIterator[PlatformServer]:
    tenant = f"folder-{uuid.uuid4().hex[:8]}"
    fake = FakeTwilioRest(ACCOUNT, TOKEN)
    agents = write_agents(tmp_path / "agents", script, {"numbers": {NUMBER: "restaurant"},
                                                        "transfer": {"restaurant": {"front desk": DESK}}})
    spec = agents / "restaurant" / "agent.yaml"
    spec.write_text(spec.read_text() + f"memory: {{tenant: {tenant}, remember: true}}\n")
    async with serve(fake.app) as rest_base:
        config = TwilioConfig(account_sid=ACCOUNT, auth_token=TOKEN, api_base_url=rest_base)
        rest = TwilioRestClient(ACCOUNT, TOKEN, base_url=rest_base,
                                retry=RetryOptions(attempts=2, base_delay_secs=0.01))
        app = create_app(agents, twilio=config, api_key="k", services=fake_services(script), rest=rest,
                         database_url=postgres_url, recording_dir=tmp_path / "recordings",
                         owner=f"test-{uuid.uuid4().hex[:6]}")
        options = {"admin_key": ADMIN_KEY, "envelopes": Envelopes(new_master_key(), ""), "drain": False,
                   "webhook_options": WebhookOptions(base_delay_secs=0.05, max_delay_secs=0.2,
                                                     summary_wait_secs=5.0),
                   **platform_options}
        mount_platform(app, app.state.host, **options)
        async with serve(app) as base:
            server = PlatformServer(base, app, fake, tmp_path, tenant)
            # The folder agent's tenant exists once its first call is stored; create it now
            # so the API can be used on it.
            from voxline.memory.models import Tenant

            store = app.state.platform.store
            async with store._tx() as conn:
                await conn.execute(store.store._insert(Tenant).values(id=tenant).on_conflict_do_nothing())
            yield server
        await rest.aclose()
