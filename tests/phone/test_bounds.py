"""Bounds on what a peer can send: body sizes, websocket message sizes, Host headers,
malformed `start` messages, hostile CallSids. Each is refused with a clear status or
close code, stores nothing, speaks nothing, and never stalls the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re

import httpx
import pytest
import websockets

from .conftest import API_KEY
from .test_call_e2e import wait_for
from .test_webhooks import VOICE, signed
from .wire import LoopLag, identity, raw_stream, start_message, token_params

MB = 1024 * 1024
SID = "CA" + "c" * 32
AUTH = {"Authorization": f"Bearer {API_KEY}"}
MEDIA_14_7_MB = json.dumps({"event": "media", "sequenceNumber": "2", "streamSid": "MZ" + "0" * 32,
                            "media": {"track": "inbound", "chunk": "1", "timestamp": "20",
                                      "payload": "A" * 14_700_000}})


async def nothing_stored(phone) -> None:
    assert await phone.stored_calls() == []
    assert phone.rest_fake.calls == {} or all(c.params.get("Url") is None for c in phone.rest_fake.calls.values())
    assert phone.app.state.host.calls == {}


# -- HTTP bodies ------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/twilio/voice", "/calls"])
async def test_a_one_megabyte_body_is_refused(phone, path) -> None:
    body = b"CallSid=" + b"x" * MB

    async def chunked():
        for i in range(0, len(body), 64 * 1024):
            yield body[i:i + 64 * 1024]

    async with httpx.AsyncClient() as client:
        sized = await client.post(phone.base + path, content=body, headers=AUTH)
        streamed = await client.post(phone.base + path, content=chunked(), headers=AUTH)
    assert "content-length" in sized.request.headers
    assert streamed.request.headers.get("transfer-encoding") == "chunked"
    assert sized.status_code == streamed.status_code == 413
    assert sized.json() == {"error": "request body too large"}
    await nothing_stored(phone)
    assert phone.rest_fake.calls == {}


async def test_huge_and_malformed_call_sids_are_refused(phone, server_log, caplog) -> None:
    caplog.set_level(logging.INFO)
    url = phone.base + "/twilio/voice"
    huge = {**VOICE, "CallSid": "CA" + "0" * MB}  # over the body bound
    large = {**VOICE, "CallSid": "CA" + "0" * 60_000}  # within it, still no CallSid
    forged_line = {**VOICE, "CallSid": "CA" + "0" * 32 + "\n2026-01-01 00:00:00 ERROR voxline.auth admin logged in"}
    async with httpx.AsyncClient() as client:
        assert (await client.post(url, data=huge, headers=signed(url, huge))).status_code == 413
        assert (await client.post(url, data=large, headers=signed(url, large))).status_code == 400
        assert (await client.post(url, data=forged_line, headers=signed(url, forged_line))).status_code == 400
        trailing = {**VOICE, "CallSid": VOICE["CallSid"] + "\n"}  # a regex "$" would let it through
        assert (await client.post(url, data=trailing, headers=signed(url, trailing))).status_code == 400
        assert (await client.post(url, data=forged_line)).status_code == 403  # unsigned: logged, refused
        status = phone.base + "/twilio/status"
        assert (await client.post(status, data=forged_line, headers=signed(status, forged_line))).status_code == 400
    await nothing_stored(phone)
    # One log record is one line, whatever a peer sent: nothing starts a line of its own.
    assert all("\n" not in r.getMessage() for r in caplog.records)
    # ... and through the server's own handlers (logsafe.install), a value that does get
    # logged is escaped, not split.
    logging.getLogger("voxline.twilio").warning("%s rejected", forged_line["CallSid"])
    text = server_log.getvalue()
    assert "rejected webhook" in text and "\\x0a2026-01-01" in text
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ voxline")
    voxline_lines = [line for line in text.splitlines() if " voxline" in line]
    assert voxline_lines and all(stamp.match(line) for line in voxline_lines), text
    assert not any(line.startswith("2026-01-01 00:00:00 ERROR voxline.auth") for line in text.splitlines())


# -- websocket messages -----------------------------------------------------------------
async def test_a_huge_media_message_closes_the_stream_without_stalling(phone) -> None:
    # Before `start`: uvicorn's ws_max_size (as voxline.server.serve sets it) refuses it.
    async with LoopLag() as lag:
        code, sent = await raw_stream(phone.ws_url, [MEDIA_14_7_MB])
    assert (code, sent) == (1009, 0)
    assert lag.worst < 0.5, lag.worst
    await nothing_stored(phone)

    # During a call: the stream is closed, the call ends and its row is closed.
    call = await phone.incoming(SID)
    await call.connect()
    assert await wait_for(lambda: len(call.played) > 2000, 10)
    async with LoopLag() as lag:
        with contextlib.suppress(websockets.ConnectionClosed, TimeoutError):
            await asyncio.wait_for(call.send_raw(MEDIA_14_7_MB), 10)
        assert await wait_for(call.closed.is_set, 5)
    await call.close()
    assert call.close_code == 1009
    assert lag.worst < 0.5, lag.worst
    record = await phone.records.wait_closed(SID, 10)
    assert (record.status, record.end_reason) == ("dropped", "dropped")


@pytest.mark.parametrize("serve_options", [{"ws_max_size": 16 * MB}])
async def test_the_router_bounds_messages_before_start(phone) -> None:
    """With a generous uvicorn limit, the router's own max_message_bytes still holds."""
    assert phone.config.max_message_bytes == 64 * 1024
    params = token_params(SID)
    padded = start_message(SID, {**params, "pad": "x" * 100_000})
    async with LoopLag() as lag:
        for messages in ([json.dumps(padded)], [MEDIA_14_7_MB, start_message(SID, params)]):
            code, sent = await raw_stream(phone.ws_url, messages)
            assert (code, sent) == (1008, 0)
    assert lag.worst < 0.5, lag.worst
    await nothing_stored(phone)


# -- Host headers ---------------------------------------------------------------------
@pytest.mark.parametrize("headers", [{"Host": "127.0.0.1:99999"}, {"Host": "a:b"}, {"Host": "a b"},
                                     {"X-Forwarded-Host": "voice.example.com:0"},
                                     {"X-Forwarded-Host": "voice.example.com:http"}])
async def test_a_bad_host_header_is_a_400(phone, headers, server_errors) -> None:
    async with httpx.AsyncClient() as client:
        voice = await client.post(phone.base + "/twilio/voice", data=VOICE, headers=headers)
        health = await client.get(phone.base + "/healthz", headers=headers)
        placed = await client.post(phone.base + "/calls", json={"to": "+15551230000", "agent": "restaurant"},
                                   headers={**AUTH, **headers})
    assert voice.status_code == health.status_code == placed.status_code == 400
    assert "header" in voice.json()["error"]
    assert server_errors == []
    await nothing_stored(phone)
    assert phone.rest_fake.calls == {}


async def test_a_bad_forwarded_host_refuses_the_stream(phone) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(phone.ws_url, additional_headers={"X-Forwarded-Host": "a:99999"}):
            pass
    assert refused.value.response.status_code == 403
    await nothing_stored(phone)


# -- malformed `start` ------------------------------------------------------------------
def bad_starts() -> dict[str, object]:
    params = token_params(SID)
    ok = start_message(SID, params)
    return {
        "sampleRate abc": start_message(SID, params, mediaFormat={"encoding": "audio/x-mulaw",
                                                                  "sampleRate": "abc", "channels": 1}),
        "customParameters list": start_message(SID, list(params.items())),  # type: ignore[arg-type]
        "customParameters nested": start_message(SID, {**params, "agent": {"name": "restaurant"}}),
        "no streamSid": {**start_message(SID, params, streamSid=None), "streamSid": None},
        "start not an object": {**ok, "start": ["callSid", SID]},
        "start null": {**ok, "start": None},
        "callSid a number": start_message(SID, params, callSid=12345),
        "callSid trailing newline": start_message(SID, params, callSid=SID + "\n"),
        "mediaFormat a list": start_message(SID, params, mediaFormat=["audio/x-mulaw"]),
        "tracks a string": start_message(SID, params, tracks="inbound"),
        "deep nesting first": "[" * 50_000,
    }


@pytest.mark.parametrize("name", list(bad_starts()))
async def test_a_malformed_start_is_refused_quietly(phone, server_errors, name) -> None:
    message = bad_starts()[name]
    messages = [message, start_message(SID, identity())] if isinstance(message, str) else [message]
    code, sent = await raw_stream(phone.ws_url, messages)
    assert (code, sent) == (1008, 0)
    assert server_errors == []  # refused with a warning, no traceback
    await nothing_stored(phone)
