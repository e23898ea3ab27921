"""The web routes over HTTP: who may start a session, rate limits and caps, the bundle."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import websockets

from voxline.transports.web import tokens

from .kit import SECRET, WIDGET_SECRET, Script, web_server

SITE = "http://127.0.0.1:9"  # an allowed site (never contacted: only its Origin header is used)
FOREIGN = "http://127.0.0.2:9"


async def post_session(base: str, origin: str | None, body: str = "{}") -> httpx.Response:
    headers = {"Content-Type": "text/plain"}
    if origin:
        headers["Origin"] = origin
    async with httpx.AsyncClient() as client:
        return await client.post(f"{base}/web/restaurant/session", content=body, headers=headers)


async def test_allowed_origin_gets_a_token_foreign_gets_403_and_nothing(tmp_path: Path) -> None:
    async with web_server(tmp_path, Script(allowed_origins=(SITE,))) as srv:
        ok = await post_session(srv.base, SITE)
        assert ok.status_code == 200, ok.text
        assert ok.headers["access-control-allow-origin"] == SITE
        body = ok.json()
        grant = tokens.verify_session(SECRET, body["token"], agent="restaurant")
        assert grant is not None and grant.origin == SITE and grant.visitor is None
        assert body["offer_url"] == f"{srv.base}/web/restaurant/offer"
        assert body["ws_url"].startswith("ws://127.0.0.1:") and body["ice_servers"] == []

        for origin in (FOREIGN, None, "null"):
            refused = await post_session(srv.base, origin)
            assert refused.status_code == 403, origin
            assert refused.json()["error"] == "origin_not_allowed"
        assert srv.host.calls == {} and await srv.host.live.active_calls("default") == 0
        # The server's own demo page is always allowed.
        assert (await post_session(srv.base, srv.base)).status_code == 200


async def test_deployment_origins_and_preflight(tmp_path: Path) -> None:
    async with web_server(tmp_path, Script(), allowed=(SITE,)) as srv, httpx.AsyncClient() as client:
        assert (await post_session(srv.base, SITE)).status_code == 200
        pre = await client.options(f"{srv.base}/web/restaurant/offer", headers={
            "Origin": SITE, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == SITE
        assert "authorization" in pre.headers["access-control-allow-headers"]
        foreign = await client.options(f"{srv.base}/web/restaurant/offer", headers={"Origin": FOREIGN})
        assert foreign.status_code == 403 and "access-control-allow-origin" not in foreign.headers


async def test_visitor_token_names_the_visitor(tmp_path: Path) -> None:
    async with web_server(tmp_path, Script(allowed_origins=(SITE,))) as srv:
        good = tokens.sign_visitor(WIDGET_SECRET, "cust-42", int(time.time()) + 600)
        body = (await post_session(srv.base, SITE, f'{{"visitor_token": "{good}"}}')).json()
        assert body["visitor"] is True
        assert tokens.verify_session(SECRET, body["token"], agent="restaurant").visitor == "cust-42"
        forged = tokens.sign_visitor(b"not the secret", "cust-42", int(time.time()) + 600)
        body = (await post_session(srv.base, SITE, f'{{"visitor_token": "{forged}"}}')).json()
        assert body["visitor"] is False
        assert tokens.verify_session(SECRET, body["token"], agent="restaurant").visitor is None


async def test_rate_limited_per_ip_and_capped_like_calls(tmp_path: Path) -> None:
    async with web_server(tmp_path, Script(allowed_origins=(SITE,), max_concurrent_calls=2)) as srv:
        codes = [(await post_session(srv.base, SITE)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]  # two reserved slots fill the agent's cap
        busy = await post_session(srv.base, SITE)
        assert busy.json()["error"] == "busy"
    async with web_server(tmp_path / "b", Script(allowed_origins=(SITE,))) as srv:
        codes = [(await post_session(srv.base, SITE)).status_code for _ in range(7)]
        assert codes == [200] * 6 + [429]  # web.sessions_per_minute defaults to 6 per IP
        assert "minute" in (await post_session(srv.base, SITE)).json()["message"]


async def test_offer_and_socket_need_the_token_from_the_same_origin(tmp_path: Path) -> None:
    async with web_server(tmp_path, Script(allowed_origins=(SITE,))) as srv, httpx.AsyncClient() as client:
        token = (await post_session(srv.base, SITE)).json()["token"]
        offer = {"sdp": "v=0\r\n", "type": "offer"}
        url = f"{srv.base}/web/restaurant/offer"
        assert (await client.post(url, json=offer, headers={"Origin": SITE})).status_code == 401
        stolen = await client.post(url, json=offer, headers={"Origin": FOREIGN, "Authorization": f"Bearer {token}"})
        assert stolen.status_code == 401
        # An ICE restart for a peer connection this worker does not hold is refused: the
        # session's call runs where its first offer was answered, not a second time here.
        elsewhere = await client.post(url, json={**offer, "pc_id": "SmallWebRTCConnection#9", "restart_pc": True},
                                      headers={"Origin": SITE, "Authorization": f"Bearer {token}"})
        assert elsewhere.status_code == 409
        ws = srv.base.replace("http://", "ws://") + "/web/restaurant/ws"
        for query, origin in ((f"?token={token}", FOREIGN), ("?token=nope", SITE), ("", SITE)):
            with pytest.raises(websockets.exceptions.InvalidStatus):
                async with websockets.connect(ws + query, origin=origin):
                    pass
        assert srv.host.calls == {}


async def test_widget_bundle_and_demo_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with web_server(tmp_path, Script()) as srv, httpx.AsyncClient() as client:
        js = await client.get(f"{srv.base}/widget.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert b"data-voxline-state" in js.content
        page = await client.get(f"{srv.base}/web/restaurant")
        assert page.status_code == 200 and 'data-agent="restaurant"' in page.text
        assert f'{srv.base}/widget.js' in page.text  # the snippet to copy names this server
        assert (await client.get(f"{srv.base}/web/nobody")).status_code == 404
        from voxline.transports.web import assets

        monkeypatch.setattr(assets, "BUNDLE", tmp_path / "missing.js")
        monkeypatch.setattr(assets.widget_bundle, "__defaults__", (tmp_path / "missing.js",))
        missing = await client.get(f"{srv.base}/widget.js")
        assert missing.status_code == 503 and b"make widget" in missing.content
