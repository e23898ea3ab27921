"""The widget against the real entry point: ``voxline serve --workers 2`` as a
subprocess, an agent on the default local models (Whisper base, llama.cpp Qwen,
Piper), nothing scripted.

One visitor holds a conversation in headless Chromium, from a page on another
origin, with recorded human speech (LibriVox) as the microphone. Then WebRTC
visitors without a browser (aiortc) show that any worker can take a session's
offer: a token one worker issued is answered by the other, as a load balancer may
route it, and every session connects and hears its greeting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from voxline.transports.web.ice import restrict_host_addresses

from .kit import CAPTIONS, STATS, chromium, mic_wav, wait_for
from .peer import Visitor, client_on_worker
from .served import Served, voxline_serve

pytestmark = [pytest.mark.browser, pytest.mark.models]

SPOKEN = "he was not an ill disposed young man".split()  # LibriVox clip 0880


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with voxline_serve(tmp_path_factory.mktemp("serve"), workers=2) as server:
        yield server


async def test_a_visitor_talks_with_the_local_models(served: Served, tmp_path: Path) -> None:
    mic = mic_wav(tmp_path / "mic.wav", (5.0, "0880"), (10.0, None))  # speaks after the greeting
    agent = f"{CAPTIONS}.filter(c => c[0] === 'agent' && c[1].trim())"
    async with chromium(mic) as browser:
        page = await browser.new_page()
        await page.goto(served.site)
        await wait_for(page, f"{agent}.some(c => c[1].toLowerCase().includes('help'))", 40)  # the greeting
        await wait_for(page, f"{CAPTIONS}.some(c => c[0] === 'visitor' && c[1].trim())", 40)
        await wait_for(page, f"{agent}.length >= 2", 40)  # ... and an answer
        captions = await page.evaluate(CAPTIONS)
        stats = await page.evaluate(STATS)
        await page.evaluate("window.voxline.hangUp()")
    assert stats["transport"] == "webrtc"
    heard = " ".join(c[1] for c in captions if c[0] == "visitor").lower().replace("-", " ")
    assert sum(w in heard.split() for w in SPOKEN) >= 5, captions  # Whisper may miss a word
    [record] = await served.calls([stats["sessionId"]])
    assert record.channel == "web" and record.to == served.site and record.ended_at is not None
    roles = [t.role for t in record.turns if t.text.strip()]
    assert "user" in roles and "assistant" in roles[roles.index("user"):], record.turns
    said = next(t.text for t in record.turns if t.role == "user").lower().replace("-", " ")
    assert sum(w in said.split() for w in SPOKEN) >= 5, said
    assert served.errors() == []


async def test_any_worker_takes_the_offer(served: Served) -> None:
    restrict_host_addresses(("127.0.0.1",))  # this process's peers offer loopback candidates only
    visitors = [Visitor(served.base, "restaurant", served.site) for _ in range(4)]
    first, second, *others = visitors

    async def visit(visitor: Visitor) -> bool:  # each request on a new connection
        async with visitor.client() as client:
            await visitor.take_token(client)
        async with visitor.client() as client:
            await visitor.offer(client)
        return await visitor.wait_heard(0.5, 30)

    try:
        assert await visit(first)
        # Now one worker holds a call and the other none: /healthz on a connection says
        # which worker it reached. The token comes from the first worker, the offer goes
        # to the other.
        async with client_on_worker(second, 1) as client:
            await second.take_token(client)
        async with client_on_worker(second, 0) as client:
            await second.offer(client)
        assert await second.wait_heard(0.5, 30)
        assert await asyncio.gather(*(visit(v) for v in others)) == [True] * len(others)
        assert all(v.connected for v in visitors)
    finally:
        await asyncio.gather(*(v.hang_up() for v in visitors))
    records = await served.calls([v.session["session_id"] for v in visitors])
    assert all(r is not None and r.channel == "web" and r.ended_at is not None for r in records), records
    assert records[1].owner != records[0].owner  # answered by the worker that did not issue the token
    assert served.errors() == []
