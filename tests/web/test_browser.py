"""The widget in a real browser: headless Chromium (Debian's) driven by Playwright, with
recorded human speech (LibriVox) as its microphone, against the call host on loopback.

Every page that embeds the widget is served by a second server, so the widget always
runs cross-origin, as on a customer's site. STT/LLM/TTS are fakes at 16 kHz (scripted
transcript, scripted reply, espeak-ng speech), so what is checked is the transport:
audio both ways, RTVI captions and state, barge-in, origins, fallback.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.fakes.twilio_loopback import serve
from voxline.transports.web import tokens

from .kit import (
    BLOCK_WEBRTC,
    CAPTIONS,
    STATE,
    STATS,
    WIDGET_SECRET,
    Script,
    chromium,
    embed_page,
    mic_wav,
    site_app,
    wait_for,
    web_server,
)

pytestmark = pytest.mark.browser

STATES = "window.voxline.events.filter(e => e.kind === 'state').map(e => e.detail)"


async def test_conversation_over_webrtc_from_another_origin(tmp_path: Path, server_errors: list[str]) -> None:
    mic = mic_wav(tmp_path / "mic.wav", (4.0, "0880"), (4.0, None))  # speaks after the greeting
    visitor = tokens.sign_visitor(WIDGET_SECRET, "cust-42", int(time.time()) + 600)
    script = Script(transcripts=["what time do you open"])
    async with web_server(tmp_path, script) as srv:
        page_html = embed_page(srv.base, autostart="1", visitor_token=visitor, title="Trattoria")
        site = site_app(page_html)
        async with serve(site) as site_base:
            srv.host.agents = {"restaurant": _allow(srv.host.agents["restaurant"], site_base)}
            async with chromium(mic) as browser:
                page = await browser.new_page()
                await page.goto(site_base)
                await wait_for(page, f"{STATE} === 'speaking'", 30)  # the greeting plays
                await wait_for(page, f"{STATS}.firstAudioAt !== null", 30)  # ... and reaches the audio element
                assert await page.evaluate(
                    "!!document.querySelector('#voxline-widget').shadowRoot.querySelector('audio').srcObject")
                await wait_for(page, f"{CAPTIONS}.some(c => c[0] === 'agent' && c[1].includes('welcome'))")
                await wait_for(page, f"{CAPTIONS}.some(c => c[0] === 'visitor')", 20)
                await wait_for(page, f"{CAPTIONS}.some(c => c[0] === 'agent' && c[1].includes('noon'))", 20)
                captions = await page.evaluate(CAPTIONS)
                assert [c[0] for c in captions] == ["agent", "visitor", "agent"]
                assert captions[1][1] == "what time do you open"
                stats = await page.evaluate(STATS)
                assert stats["transport"] == "webrtc" and stats["audioSecs"] > 2.0
                assert await page.evaluate("document.querySelector('#voxline-widget').dataset.voxlineTransport") \
                    == "webrtc"
                states = await page.evaluate(STATES)
                assert states[:4] == ["idle", "connecting", "listening", "speaking"]
                # The STT heard the visitor's recorded speech (one segment of about its length).
                segment = srv.made[0].stt.segments[0] / 2 / 16000
                assert 2.0 < segment < 5.0, segment
                await page.evaluate("window.voxline.hangUp()")
                assert await page.evaluate(STATE) == "idle"
        sid = stats["sessionId"]
        record = await srv.host.records.wait_closed(sid, 15)
        assert record.channel == "web" and record.from_ == "cust-42" and record.to == site_base
        assert record.end_reason == "caller_hung_up"
        result = srv.host.results[sid]
        assert [t.user_text for t in result.turns if t.user_text] == ["what time do you open"]
        assert any("noon" in t.agent_text for t in result.turns)
        assert server_errors == []  # e.g. Pipecat's "RTVIProcessor found ... but no RTVIObserver"


async def test_barge_in_stops_the_agent_and_the_transcript_keeps_what_was_heard(tmp_path: Path) -> None:
    menu = ("Today we have pasta. There is grilled fish from the coast, and a slow cooked lamb shoulder "
            "with rosemary and garlic. For dessert there is a dark chocolate cake.")
    # The visitor asks, then talks over the long answer 2.5 s after finishing the question.
    mic = mic_wav(tmp_path / "mic.wav", (4.0, "0880"), (2.5, "0930"), (5.0, None))
    script = Script(greeting="Hello.", transcripts=["what is on the menu", "sorry, are you open tonight"],
                    reply=lambda text: menu if "menu" in text else "Yes, we are open tonight until ten.")
    async with web_server(tmp_path, script) as srv:
        async with serve(site_app(embed_page(srv.base, autostart="1"))) as site_base:
            srv.host.agents = {"restaurant": _allow(srv.host.agents["restaurant"], site_base)}
            async with chromium(mic) as browser:
                page = await browser.new_page()
                await page.goto(site_base)
                await wait_for(page, f"{CAPTIONS}.some(c => c[0] === 'agent' && c[2])", 30)
                barge = (await page.evaluate(STATS))["userStartedAt"]  # the second question
                await wait_for(page, f"{CAPTIONS}.some(c => c[0] === 'agent' && c[1].includes('tonight'))", 20)
                stats = await page.evaluate(STATS)
                captions = await page.evaluate(CAPTIONS)
                await page.evaluate("window.voxline.hangUp()")
        edges = stats["edges"]
        stopped = max(t for t, on in edges if not on and t < barge + 1500)
        # The agent's audio stopped at the browser no later than the news of the barge-in
        # (RTVI user-started-speaking) arrived there: it was cut by the visitor's speech,
        # with seconds of the answer left to play.
        assert barge - 1000 < stopped < barge + 1000, (edges, barge)  # hysteresis, jitter buffer, a busy 2-core CI
        restarted = next(t for t, on in edges if on and t > stopped)
        assert restarted - stopped > 1500  # silent until the visitor finished and the answer came
        cut = next(c for c in captions if c[0] == "agent" and c[2])  # marked interrupted
        assert cut[1] and menu.startswith(cut[1][:15]) and "chocolate" not in cut[1], captions
        await _result(srv, stats["sessionId"])
        await srv.host.settle()
        stored = await srv.host.records.get(stats["sessionId"])
        texts = [(t.role, t.text, t.interrupted) for t in stored.turns]
        heard = [t[1] for t in texts if t[0] == "assistant" and t[2]]
        # The record keeps the sentences that were played, flagged as interrupted.
        assert heard and heard[0].startswith("Today we have pasta.") and "chocolate" not in heard[0], texts
        assert ("user", "sorry, are you open tonight", False) in texts


async def test_foreign_origin_is_refused_and_no_session_starts(tmp_path: Path) -> None:
    async with web_server(tmp_path, Script()) as srv:
        async with serve(site_app(embed_page(srv.base, autostart="1"))) as site_base:
            # No origin is allowed for this agent: the site is foreign.
            async with chromium(None) as browser:
                page = await browser.new_page()
                await page.goto(site_base)
                await wait_for(page, f"{STATE} === 'error'", 10)
                kind = await page.evaluate("document.querySelector('#voxline-widget').dataset.voxlineError")
                notice = await page.evaluate(
                    "document.querySelector('#voxline-widget').shadowRoot.querySelector('.notice').textContent")
        assert kind == "origin" and "may not start" in notice
        assert srv.host.calls == {} and srv.made == []
        assert await srv.host.live.active_calls("default") == 0


async def test_websocket_fallback_when_webrtc_cannot_connect(tmp_path: Path) -> None:
    mic = mic_wav(tmp_path / "mic.wav", (6.0, "0930"), (4.0, None))
    script = Script(transcripts=["can I book a table"], reply=lambda text: "Of course, for how many people?")
    async with web_server(tmp_path, script) as srv:
        async with serve(site_app(embed_page(srv.base, autostart="1", webrtc_timeout="4000"))) as site_base:
            srv.host.agents = {"restaurant": _allow(srv.host.agents["restaurant"], site_base)}
            async with chromium(mic) as browser:
                page = await browser.new_page()
                await page.add_init_script(BLOCK_WEBRTC)  # ICE cannot succeed
                await page.goto(site_base)
                await wait_for(page, f"{STATS}.transport === 'websocket' && {STATE} !== 'connecting'", 20)
                await wait_for(page, f"{STATS}.audioSecs > 1.0", 15)  # the greeting arrived
                await wait_for(page, f"{CAPTIONS}.some(c => c[0] === 'visitor')", 20)
                await wait_for(page, f"{CAPTIONS}.some(c => c[0] === 'agent' && c[1].includes('how many'))", 20)
                stats = await page.evaluate(STATS)
                await page.evaluate("window.voxline.hangUp()")
        record = await srv.host.records.wait_closed(stats["sessionId"], 15)
        assert record.channel == "web"
        assert len(srv.made) == 1  # one call: the WebRTC attempt never reached the host


async def test_refused_microphone_says_so(tmp_path: Path) -> None:
    async with web_server(tmp_path, Script()) as srv:
        async with serve(site_app(embed_page(srv.base))) as site_base:
            srv.host.agents = {"restaurant": _allow(srv.host.agents["restaurant"], site_base)}
            async with chromium(None, grant_mic=False) as browser:
                context = await browser.new_context()  # no microphone permission
                page = await context.new_page()
                await page.goto(site_base)
                await page.click("#voxline-widget >> .launcher")  # keyboard-reachable button
                await wait_for(page, f"{STATE} === 'error'", 15)
                kind = await page.evaluate("document.querySelector('#voxline-widget').dataset.voxlineError")
                notice = await page.evaluate(
                    "document.querySelector('#voxline-widget').shadowRoot.querySelector('.notice').textContent")
                retry = await page.evaluate(
                    "document.querySelector('#voxline-widget').shadowRoot.activeElement?.className")
        assert kind == "mic" and "Microphone access is blocked" in notice
        assert retry == "retry"  # focus moves to "Try again"
        await asyncio.sleep(0.2)
        assert srv.host.calls == {}


def _allow(spec, origin: str):  # type: ignore[no-untyped-def]
    from voxline.transports.web.origins import web_settings
    from voxline.web_settings import WebSettings

    from .kit import with_web

    settings = web_settings(spec)
    return with_web(spec, WebSettings(**{**settings.model_dump(), "allowed_origins": (origin,)}))


async def _result(srv, sid: str):  # type: ignore[no-untyped-def]
    for _ in range(200):
        if sid in srv.host.results:
            return srv.host.results[sid]
        await asyncio.sleep(0.05)
    raise AssertionError("the call did not end")
