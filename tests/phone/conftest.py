"""Fixtures: the real voxline app (``create_app``) under uvicorn and a fake Twilio REST API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI

from tests.fakes.twilio_loopback import serve
from tests.fakes.twilio_rest import FakeTwilioRest
from voxline.server import create_app
from voxline.transports.twilio import (
    InMemoryCallRecords,
    RetryOptions,
    TwilioConfig,
    TwilioRestClient,
)
from voxline.transports.twilio.greeting import GreetingCache

from .kit import AgentScript, fake_services, write_agents

ACCOUNT = "AC00000000000000000000000000000000"
TOKEN = "test-token"
API_KEY = "test-api-key"
ROUTES = {"+15550001111": "restaurant"}
TRANSFER = {"front desk": "+15550002222"}


@dataclass
class PhoneServer:
    base: str
    records: InMemoryCallRecords
    rest_fake: FakeTwilioRest
    rest: TwilioRestClient
    config: TwilioConfig
    app: FastAPI

    @property
    def ws_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/twilio/stream"

    @property
    def results(self) -> dict:
        """call sid -> CallResult of finished CallSessions."""
        return self.app.state.phone.results

    @property
    def greetings(self) -> GreetingCache:
        return self.app.state.phone.greetings


@pytest.fixture
def script() -> AgentScript:
    return AgentScript()


@pytest.fixture
def stream_options() -> dict:
    """``create_app(stream_options=...)``; a test module may override it."""
    return {}


@pytest.fixture
async def phone(script: AgentScript, tmp_path: Path, stream_options: dict) -> AsyncIterator[PhoneServer]:
    fake = FakeTwilioRest(ACCOUNT, TOKEN)
    agents = write_agents(tmp_path / "agents", script,
                          {"numbers": ROUTES, "transfer": {"restaurant": TRANSFER}})
    async with serve(fake.app) as rest_base:
        config = TwilioConfig(account_sid=ACCOUNT, auth_token=TOKEN, api_base_url=rest_base)
        rest = TwilioRestClient(ACCOUNT, TOKEN, base_url=rest_base,
                                retry=RetryOptions(attempts=3, base_delay_secs=0.01))
        records = InMemoryCallRecords()
        app = create_app(agents, twilio=config, api_key=API_KEY, services=fake_services(script),
                         records=records, rest=rest, recording_dir=tmp_path / "recordings",
                         database_url=str(tmp_path / "voxline.db"), stream_options=stream_options)
        async with serve(app) as base:
            yield PhoneServer(base, records, fake, rest, app.state.config, app)
        await rest.aclose()
