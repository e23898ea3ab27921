"""Fixtures: the real voxline app (``create_app``) under uvicorn and a fake Twilio REST API."""

from __future__ import annotations

import gc
import io
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from loguru import logger as loguru_logger

from tests.fakes.twilio_loopback import serve
from tests.fakes.twilio_media import FakeTwilioCall
from tests.fakes.twilio_rest import FakeTwilioRest, stream_of
from voxline import logsafe
from voxline.memory.records import CallRecord
from voxline.pipelines.call_records import CallRecords
from voxline.processors.greeting import GreetingCache
from voxline.server import create_app
from voxline.transports.twilio import RetryOptions, TwilioConfig, TwilioRestClient

from .kit import AgentScript, fake_services, write_agents

ACCOUNT = "AC00000000000000000000000000000000"
TOKEN = "test-token"
API_KEY = "test-api-key"
ROUTES = {"+15550001111": "restaurant"}
TRANSFER = {"front desk": "+15550002222"}


@dataclass
class PhoneServer:
    base: str
    rest_fake: FakeTwilioRest
    rest: TwilioRestClient
    config: TwilioConfig
    app: FastAPI

    @property
    def ws_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/twilio/stream"

    @property
    def records(self) -> CallRecords:
        """The call store's records (the server's one store of calls)."""
        records = self.app.state.host.records
        assert records is not None
        return records

    @property
    def results(self) -> dict:
        """call sid -> CallResult of finished CallSessions."""
        return self.app.state.host.results

    @property
    def greetings(self) -> GreetingCache:
        return self.app.state.host.greetings

    async def stored_calls(self) -> list[CallRecord]:
        """Every call row of the agents' tenant, newest first."""
        return await self.records.store.list_calls("default", limit=1000)

    async def incoming(self, call_sid: str = "CA00000000000000000000000000000001", *,
                       from_: str = "+15557654321", to: str = "+15550001111",
                       **options: object) -> FakeTwilioCall:
        """Ring the server like Twilio (signed voice webhook) and return the media
        stream client its TwiML asks for (not yet connected)."""
        response = await self.rest_fake.ring(self.base + "/twilio/voice", call_sid, from_=from_, to=to)
        assert response.status_code == 200, response.text
        url, params = stream_of(response.text)
        return FakeTwilioCall(url, call_sid=call_sid, account_sid=ACCOUNT, parameters=params, **options)

    async def answered(self, call_sid: str, **options: object) -> FakeTwilioCall:
        """An outbound call we placed is picked up: the stream client its TwiML asks for."""
        response = await self.rest_fake.answer(call_sid)
        assert response.status_code == 200, response.text
        url, params = stream_of(response.text)
        return FakeTwilioCall(url, call_sid=call_sid, account_sid=ACCOUNT, parameters=params, **options)


@pytest.fixture
def script() -> AgentScript:
    return AgentScript()


@pytest.fixture
def stream_options() -> dict:
    """``create_app(stream_options=...)``; a test module may override it."""
    return {}


@pytest.fixture
def twilio_options() -> dict:
    """Extra ``TwilioConfig`` fields (e.g. ``trust_forwarded_headers``); a test module may override it."""
    return {}


@pytest.fixture
def app_options() -> dict:
    """Extra ``create_app`` keyword arguments (``limits``, ``docs``, ...); a test module may override it."""
    return {}


@pytest.fixture
def serve_options() -> dict:
    """Extra uvicorn settings for the server (``ws_max_size``); a test module may override it."""
    return {}


@pytest.fixture
async def phone(script: AgentScript, tmp_path: Path, stream_options: dict, twilio_options: dict,
                app_options: dict, serve_options: dict) -> AsyncIterator[PhoneServer]:
    fake = FakeTwilioRest(ACCOUNT, TOKEN)
    agents = write_agents(tmp_path / "agents", script,
                          {"numbers": ROUTES, "transfer": {"restaurant": TRANSFER}})
    async with serve(fake.app) as rest_base:
        config = TwilioConfig(account_sid=ACCOUNT, auth_token=TOKEN, api_base_url=rest_base,
                              **twilio_options)
        rest = TwilioRestClient(ACCOUNT, TOKEN, base_url=rest_base,
                                retry=RetryOptions(attempts=3, base_delay_secs=0.01))
        options = {"services": fake_services(script), **app_options}
        app = create_app(agents, twilio=config, api_key=API_KEY, rest=rest,
                         recording_dir=tmp_path / "recordings", database_url=str(tmp_path / "voxline.db"),
                         stream_options=stream_options, **options)
        async with serve(app, **serve_options) as base:
            yield PhoneServer(base, fake, rest, app.state.config, app)
        await rest.aclose()


@pytest.fixture
def server_errors() -> Iterator[list[str]]:
    """ERROR lines the server logs during the test (voxline, uvicorn, Pipecat's loguru);
    a record that carried a traceback ends in " [traceback]"."""
    lines: list[str] = []
    seen: set[int] = set()
    gc.collect()  # an earlier test's garbage (a vendor client's __del__) is not this test's error

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if id(record) not in seen:  # voxline's records also reach the root logger
                seen.add(id(record))
                lines.append(f"{record.name}: {record.getMessage()}" + (" [traceback]" if record.exc_info else ""))

    handler = Collect(logging.ERROR)
    loggers = [logging.getLogger(name) for name in ("", "uvicorn", "voxline")]
    for logger in loggers:
        logger.addHandler(handler)
    sink = loguru_logger.add(lambda m: lines.append(f"pipecat: {m.record['message']}"), level="ERROR")
    yield lines
    loguru_logger.remove(sink)
    for logger in loggers:
        logger.removeHandler(handler)


@pytest.fixture
def server_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """What the server writes to stderr at INFO with its real logging set-up
    (``logsafe.install``, as ``voxline serve`` runs in every worker)."""
    buffer = io.StringIO()
    root = logging.getLogger("voxline")
    saved = (list(root.handlers), root.propagate, root.level)
    monkeypatch.setattr(sys, "stderr", buffer)  # install's handlers write to sys.stderr
    logsafe.install("INFO")
    yield buffer
    root.handlers[:], root.propagate = saved[0], saved[1]
    root.setLevel(saved[2])
    loguru_logger.remove()
    loguru_logger.add(sys.__stderr__)
