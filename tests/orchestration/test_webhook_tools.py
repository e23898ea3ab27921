"""Webhook tools against a loopback server: JSON body, HMAC signature, bounded retries, timeout."""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.twilio_loopback import serve
from voxline.errors import ToolError
from voxline.integrations.tools.http import HttpTool, verify
from voxline.integrations.tools.loader import load_tool
from voxline.spec import ToolSpec

SECRET = "s3cret-key"
PARAMS = {"type": "object", "properties": {"name": {"type": "string"}, "phone": {"type": "string"}},
          "required": ["name"], "additionalProperties": False}


class Crm:
    def __init__(self, fail: list[int] | None = None, delay: float = 0.0):
        self.fail, self.delay = list(fail or []), delay
        self.received: list[tuple[dict, bool]] = []

    def app(self) -> Starlette:
        async def lead(request: Request):
            body = await request.body()
            ok = verify(SECRET, body, request.headers.get("x-voxline-signature", ""))
            self.received.append((json.loads(body), ok))
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.fail:
                return JSONResponse({"error": "busy"}, status_code=self.fail.pop(0))
            return JSONResponse({"lead_id": "L-7", "ok": ok})

        return Starlette(routes=[Route("/hooks/lead", lead, methods=["POST"])])


def _tool(url: str, **kw) -> HttpTool:
    spec = ToolSpec(name="new_lead", handler=f"http:POST {url}/hooks/lead", parameters=PARAMS,
                    http={"secret_env": "CRM_SECRET", "retries": 2}, **kw)
    tool = load_tool(spec, base_dir=None)  # type: ignore[arg-type]
    assert isinstance(tool, HttpTool)
    return tool


async def test_a_signed_post_with_retries(monkeypatch):
    monkeypatch.setenv("CRM_SECRET", SECRET)
    crm = Crm(fail=[503, 429])
    async with serve(crm.app()) as url:
        tool = _tool(url)
        assert tool.function_schema().required == ["name"]
        result = await tool.call({"name": "Anna", "phone": "+15550100"})
    assert result == {"lead_id": "L-7", "ok": True}
    assert len(crm.received) == 3 and all(ok for _, ok in crm.received)
    assert crm.received[0][0] == {"name": "Anna", "phone": "+15550100"}
    assert not verify("wrong", json.dumps({"name": "Anna"}).encode(), "t=1,v1=00")


async def test_bounded_retries_a_permanent_error_and_the_timeout(monkeypatch):
    monkeypatch.setenv("CRM_SECRET", SECRET)
    crm = Crm(fail=[500, 500, 500, 500])
    async with serve(crm.app()) as url:
        with pytest.raises(ToolError, match="HTTP 500"):
            await _tool(url).call({"name": "Anna"})
        assert len(crm.received) == 3  # one try and two retries, no more
        crm.fail = [400]
        with pytest.raises(ToolError, match="HTTP 400"):
            await _tool(url).call({"name": "Anna"})
        assert len(crm.received) == 4  # a 4xx is final
        with pytest.raises(ToolError, match="invalid arguments"):
            await _tool(url).call({"nme": "Anna"})
        crm.delay = 2.0
        with pytest.raises(ToolError, match="timed out"):
            await _tool(url, timeout_secs=0.3).call({"name": "Anna"})


def test_a_missing_signing_key_fails_fast(monkeypatch):
    monkeypatch.delenv("CRM_SECRET", raising=False)
    with pytest.raises(Exception, match="CRM_SECRET"):
        _tool("http://127.0.0.1:9")


async def test_the_tenants_stored_secret_signs_and_its_headers_are_sent():
    from voxline.integrations.tools.settings import ToolConfig

    seen: list[dict] = []

    async def lead(request: Request):
        body = await request.body()
        seen.append({"auth": request.headers.get("authorization"), "tenant": request.headers.get("x-tenant"),
                     "signed": verify(SECRET, body, request.headers.get("x-voxline-signature", ""))})
        return JSONResponse({"lead_id": "L-8"})

    app = Starlette(routes=[Route("/hooks/lead", lead, methods=["POST"])])
    async with serve(app) as url:
        tool = load_tool(ToolSpec(name="new_lead", handler=f"http:POST {url}/hooks/lead", parameters=PARAMS),
                         base_dir=None)  # type: ignore[arg-type]
        config = ToolConfig(settings={"headers": {"X-Tenant": "acme"}},
                            secrets={"signing_secret": SECRET, "Authorization": "Bearer crm-token"})
        assert await tool.call({"name": "Anna"}, config) == {"lead_id": "L-8"}
        assert await tool.call({"name": "Anna"}) == {"lead_id": "L-8"}  # unconfigured: unsigned
    assert seen == [{"auth": "Bearer crm-token", "tenant": "acme", "signed": True},
                    {"auth": None, "tenant": None, "signed": False}]
    assert "crm-token" not in repr(config) and SECRET not in repr(config)
