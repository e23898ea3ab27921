"""The dashboard in the real browser (Debian's chromium under Playwright) on the real app and
Postgres: sign in with a key, the charts per agent, a call's transcript with its recording
playing, agents and versions, live calls; another tenant's key sees none of it.
Screenshots go to docs/dashboard/ (``VOXLINE_SHOTS=1``) or to the test's temp folder."""

from __future__ import annotations

import os
import uuid
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.phone.kit import speech
from tests.web.kit import chromium

from .conftest import PlatformServer
from .test_api import agent_spec, seed_call

pytestmark = [pytest.mark.services, pytest.mark.browser]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "dashboard"
VIEW = {"width": 1280, "height": 860}


def write_recording(path: Path, text: str) -> None:
    """A two-channel WAV like TwoChannelRecorder's: caller left, agent right."""
    import numpy as np

    agent = np.frombuffer(speech(text), np.int16)
    stereo = np.zeros((len(agent), 2), np.int16)
    stereo[:, 1] = agent
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(stereo.tobytes())


async def seed(server: PlatformServer, tenant: str, key: str) -> str:
    async with server.client(key) as c:
        await c.post(f"/api/v1/tenants/{tenant}/agents", json={"spec": agent_spec("bookings", "Book tables.")})
        await c.post(f"/api/v1/tenants/{tenant}/agents",
                     json={"spec": agent_spec("bookings", "Book tables, kindly."), "note": "warmer tone"})
        await c.post(f"/api/v1/tenants/{tenant}/agents", json={"spec": agent_spec("support")})
    store = server.platform.store.store
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    last = ""
    for day in range(6, -1, -1):
        for agent, cost in (("bookings", 0.012 + day * 0.002), ("support", 0.02 - day * 0.001)):
            last = await seed_call(server, tenant, agent=agent, caller=f"+1555765{day:02d}{len(agent):02d}",
                                   cost=cost, started=now - timedelta(days=day, hours=1))
            async with store._tx() as conn:  # vary the latency a little per day and agent
                import sqlalchemy as sa

                from voxline.memory.models import Call

                v2v = 540.0 + 40 * day + (120 if agent == "support" else 0)
                await conn.execute(sa.update(Call).where(Call.id == last).values(
                    latency_stats={"voice_to_voice": {"n": 3, "p50": v2v, "p95": v2v + 90, "max": v2v + 150}}))
    write_recording(server.platform.recording_dir / f"{last}.wav", "For what time would you like the table?")
    live = "CA" + uuid.uuid4().hex
    await store.start_call(tenant, call_id=live, channel="twilio", direction="inbound", from_="+15557659999",
                           to="+15550001111", agent="bookings", caller_key="+15557659999", model_versions={})
    return last


async def shot(page, name: str, tmp: Path) -> None:
    target = DOCS if os.environ.get("VOXLINE_SHOTS") == "1" else tmp
    target.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(target / f"{name}.png"), full_page=True)


async def test_dashboard_in_the_browser(platform_server: PlatformServer, tmp_path: Path) -> None:
    server = platform_server
    tenant, key = await server.new_tenant("trattoria")
    other_tenant, other_key = await server.new_tenant("other")
    call_id = await seed(server, tenant, key)
    async with chromium(None, grant_mic=False, extra=["--autoplay-policy=no-user-gesture-required"]) as browser:
        page = await (await browser.new_context(viewport=VIEW)).new_page()
        response = await page.goto(server.base + "/dashboard")
        assert page.url.endswith("/dashboard/login") and response.ok
        await page.fill("input[name=key]", "vxk_wrong_key")
        await page.click("button[type=submit]")
        assert "not valid" in await page.inner_text("body")
        await page.fill("input[name=key]", key)
        await page.click("button[type=submit]")
        await page.wait_for_url(server.base + "/dashboard")
        body = await page.inner_text("body")
        assert tenant in body and "calls in progress" in body and "14 calls" not in body
        assert await page.locator("svg.chart").count() == 2
        assert await page.locator("svg.chart path").count() == 4  # two agents on each chart
        await shot(page, "overview", tmp_path)

        await page.click("header >> text=Calls")
        assert await page.locator("table tr").count() == 1 + 15  # 14 ended calls and the live one
        await page.click(f"a[href^='/dashboard/calls/{call_id}']")
        await page.wait_for_selector("audio")
        text = await page.inner_text("main")
        assert "A table for two, please." in text and "For what time?" in text and "openai/gpt-4o-mini" in text
        duration = await page.evaluate("""() => new Promise(resolve => {
            const a = document.querySelector('audio');
            const done = () => resolve(a.duration);
            if (a.readyState >= 1) done(); else a.addEventListener('loadedmetadata', done);
        })""")
        assert 1.5 < duration < 5, duration
        played = await page.evaluate("""async () => { const a = document.querySelector('audio');
            a.muted = true; await a.play(); await new Promise(r => setTimeout(r, 700));
            return a.currentTime; }""")
        assert played > 0.3
        await shot(page, "call", tmp_path)

        await page.click("header >> text=Agents")
        text = await page.inner_text("main")
        assert "bookings" in text and "v2" in text and "warmer tone" in text and "support" in text
        await shot(page, "agents", tmp_path)

        await page.click("header >> text=Live")
        assert await page.locator("table tr").count() == 2 and "in-progress" in await page.inner_text("main")
        await shot(page, "live", tmp_path)

        # Another tenant's key: none of it, not even the call by its id.
        await page.click("text=Sign out")
        await page.fill("input[name=key]", other_key)
        await page.click("button[type=submit]")
        await page.wait_for_url(server.base + "/dashboard")
        assert other_tenant in await page.inner_text("header")
        response = await page.goto(server.base + f"/dashboard/calls/{call_id}")
        assert response.status == 404
        response = await page.request.get(server.base + f"/dashboard/calls/{call_id}/recording")
        assert response.status == 404
        await page.goto(server.base + "/dashboard/calls")
        assert await page.locator("table tr").count() == 2 and "No calls." in await page.inner_text("main")
