"""A fake of Twilio's REST API (the Calls resource) on loopback, plus status callbacks.

Speaks the documented form-encoded API: POST .../Accounts/{sid}/Calls.json creates a
call, POST .../Calls/{CallSid}.json updates it (Status=completed hangs up, Twiml=...
redirects it, e.g. to a <Dial>). Status callbacks are POSTed to the call's
StatusCallback URL, signed with the official SDK's RequestValidator. Failures can be
injected to test retries.
"""

from __future__ import annotations

import base64
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from twilio.request_validator import RequestValidator


@dataclass
class FakeCall:
    sid: str
    params: dict[str, list[str]]
    status: str = "queued"
    updates: list[dict[str, str]] = field(default_factory=list)
    update_times: list[float] = field(default_factory=list)  # time.monotonic() of each update

    def one(self, name: str) -> str | None:
        values = self.params.get(name)
        return values[-1] if values else None


class FakeTwilioRest:
    def __init__(self, account_sid: str, auth_token: str, *, first_id: int = 1) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.calls: dict[str, FakeCall] = {}
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self._fail: list[int] = []  # statuses to answer with before behaving
        self._ids = itertools.count(first_id)  # CallSids CA<first_id, zero-padded>, CA<first_id + 1>, ...
        # Called with (call_sid, params) as each update arrives: lets a test snapshot
        # what the caller had heard at the moment of a hang-up or transfer.
        self.on_update: Callable[[str, dict[str, str]], None] | None = None
        self.app = self._build()

    def fail_next(self, *statuses: int) -> None:
        self._fail.extend(statuses)

    def _build(self) -> FastAPI:
        app = FastAPI()
        base = "/2010-04-01/Accounts/{account}/Calls"

        @app.post(base + ".json")
        async def create(account: str, request: Request) -> Response:
            if (error := self._check(request, account)) is not None:
                return error
            params = await _form(request)
            for required in ("To", "From"):
                if required not in params:
                    return self._error(request, 400, 21201, f"No '{required}' number is specified")
            if "Url" not in params and "Twiml" not in params:
                return self._error(request, 400, 21205, "Url or Twiml is required")
            sid = f"CA{next(self._ids):032d}"
            self.calls[sid] = FakeCall(sid, params)
            self.requests.append(("POST", request.url.path, 201))
            return JSONResponse({"sid": sid, "status": "queued", "to": params["To"][0]}, 201)

        @app.post(base + "/{call_sid}.json")
        async def update(account: str, call_sid: str, request: Request) -> Response:
            if (error := self._check(request, account)) is not None:
                return error
            call = self.calls.get(call_sid)
            if call is None:
                return self._error(request, 404, 20404, "The requested resource was not found")
            params = {k: v[-1] for k, v in (await _form(request)).items()}
            call.updates.append(params)
            call.update_times.append(time.monotonic())
            if self.on_update is not None:
                self.on_update(call_sid, params)
            if params.get("Status") == "completed":
                call.status = "completed"
            self.requests.append(("POST", request.url.path, 200))
            return JSONResponse({"sid": call_sid, "status": call.status})

        return app

    def _check(self, request: Request, account: str) -> Response | None:
        if self._fail:
            status = self._fail.pop(0)
            return self._error(request, status, 20500 if status >= 500 else 20429, "injected")
        token = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        expected = f"Basic {token}"
        if request.headers.get("authorization") != expected or account != self.account_sid:
            return self._error(request, 401, 20003, "Authenticate")
        return None

    def _error(self, request: Request, status: int, code: int, message: str) -> Response:
        self.requests.append(("POST", request.url.path, status))
        return JSONResponse({"code": code, "message": message, "status": status}, status)

    def add_inbound(self, sid: str, **params: str) -> FakeCall:
        call = FakeCall(sid, {k: [v] for k, v in params.items()}, status="ringing")
        self.calls[sid] = call
        return call

    async def send_status(self, call_sid: str, status: str, *, url: str | None = None,
                          **extra: str) -> httpx.Response:
        """POST a signed status callback for ``call_sid`` like Twilio does."""
        call = self.calls[call_sid]
        target = url or call.one("StatusCallback")
        assert target, "call has no StatusCallback"
        call.status = status
        params = {"CallSid": call_sid, "AccountSid": self.account_sid, "CallStatus": status,
                  "To": call.one("To") or "", "From": call.one("From") or "", **extra}
        signature = RequestValidator(self.auth_token).compute_signature(target, params)
        async with httpx.AsyncClient() as client:
            return await client.post(target, data=params, headers={"X-Twilio-Signature": signature})


    async def _webhook(self, url: str, params: dict[str, str]) -> httpx.Response:
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        async with httpx.AsyncClient() as client:
            return await client.post(url, data=params, headers={"X-Twilio-Signature": signature})

    async def ring(self, voice_url: str, call_sid: str, *, from_: str, to: str) -> httpx.Response:
        """An inbound call: Twilio POSTs the number's voice webhook (signed)."""
        self.add_inbound(call_sid, To=to, From=from_)
        return await self._webhook(voice_url, {
            "CallSid": call_sid, "AccountSid": self.account_sid, "From": from_, "To": to,
            "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01"})

    async def answer(self, call_sid: str) -> httpx.Response:
        """An outbound call was picked up: Twilio POSTs the call's Url for its TwiML."""
        call = self.calls[call_sid]
        url = call.one("Url")
        assert url, "call was created without a Url"
        call.status = "in-progress"
        return await self._webhook(url, {
            "CallSid": call_sid, "AccountSid": self.account_sid, "From": call.one("From") or "",
            "To": call.one("To") or "", "CallStatus": "in-progress", "Direction": "outbound-api",
            "ApiVersion": "2010-04-01"})

    async def send_amd(self, call_sid: str, answered_by: str, *,
                       duration_ms: int = 2500) -> httpx.Response:
        """POST the async answering-machine-detection verdict to AsyncAmdStatusCallback,
        with the parameters Twilio documents for it (no CallStatus)."""
        call = self.calls[call_sid]
        target = call.one("AsyncAmdStatusCallback")
        assert target, "call was created without AsyncAmd"
        params = {"CallSid": call_sid, "AccountSid": self.account_sid, "AnsweredBy": answered_by,
                  "MachineDetectionDuration": str(duration_ms)}
        signature = RequestValidator(self.auth_token).compute_signature(target, params)
        async with httpx.AsyncClient() as client:
            return await client.post(target, data=params, headers={"X-Twilio-Signature": signature})


async def _form(request: Request) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for key, value in parse_qsl((await request.body()).decode(), keep_blank_values=True):
        params.setdefault(key, []).append(value)
    return params


def stream_of(twiml: str) -> tuple[str, dict[str, str]]:
    """The <Stream url> and its <Parameter>s from a <Connect><Stream> TwiML answer."""
    import xml.etree.ElementTree as ET

    stream = ET.fromstring(twiml).find("./Connect/Stream")
    assert stream is not None, f"no <Connect><Stream> in {twiml}"
    params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    return stream.get("url", ""), params
