"""Fixtures: a real voxline Twilio router under uvicorn and a fake Twilio REST API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI

from tests.fakes.twilio_loopback import serve
from tests.fakes.twilio_rest import FakeTwilioRest
from voxline.transports.twilio import (
    InMemoryCallRecords,
    RetryOptions,
    TwilioConfig,
    TwilioRestClient,
    twilio_router,
)

from .kit import AgentScript, make_on_stream

ACCOUNT = "AC00000000000000000000000000000000"
TOKEN = "test-token"
ROUTES = {"+15550001111": "restaurant"}


@dataclass
class PhoneServer:
    base: str
    records: InMemoryCallRecords
    rest_fake: FakeTwilioRest
    rest: TwilioRestClient
    config: TwilioConfig
    results: dict

    @property
    def ws_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/twilio/stream"


@pytest.fixture
def script() -> AgentScript:
    return AgentScript()


@pytest.fixture
async def phone(script: AgentScript) -> AsyncIterator[PhoneServer]:
    fake = FakeTwilioRest(ACCOUNT, TOKEN)
    async with serve(fake.app) as rest_base:
        config = TwilioConfig(account_sid=ACCOUNT, auth_token=TOKEN, routes=ROUTES,
                              api_base_url=rest_base)
        rest = TwilioRestClient(ACCOUNT, TOKEN, base_url=rest_base,
                                retry=RetryOptions(attempts=3, base_delay_secs=0.01))
        records = InMemoryCallRecords()
        results: dict = {}
        app = FastAPI()
        app.include_router(twilio_router(config, make_on_stream(script, results),
                                         records=records, rest=rest))
        async with serve(app) as base:
            yield PhoneServer(base, records, fake, rest, config, results)
        await rest.aclose()
