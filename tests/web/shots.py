"""Screenshots of the widget's states for the docs: ``python -m tests.web.shots docs/widget``.

Runs the real widget against the call host with the test fakes (espeak-ng voice), in
headless Chromium with recorded speech as the microphone, on the demo page.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from .kit import STATE, Script, chromium, mic_wav, wait_for, web_server

VIEW = {"width": 1200, "height": 760}
MENU = ("Tonight we have fresh pasta with basil, grilled fish from the coast and a dark chocolate cake. "
        "Would you like me to book a table for you?")


async def shots(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        mic = mic_wav(tmp / "mic.wav", (6.5, "0880"), (20.0, None))
        script = Script(greeting="Hello, welcome to Trattoria Sole. How can I help?",
                        transcripts=["what do you have on the menu tonight"], reply=lambda text: MENU)
        async with web_server(tmp, script) as srv:
            async with chromium(mic) as browser:
                page = await browser.new_page(viewport=VIEW, device_scale_factor=1)
                await page.goto(srv.base + "/web/restaurant")
                await page.wait_for_timeout(300)
                await page.screenshot(path=str(out / "idle.png"))
                await page.evaluate("window.voxline.start()")
                await wait_for(page, f"{STATE} === 'listening'", 30)
                await wait_for(page, "window.voxline.events.some(e => e.kind === 'user-text')", 30)
                await wait_for(page, f"{STATE} === 'speaking'", 30)
                await page.wait_for_timeout(5200)
                await page.screenshot(path=str(out / "speaking.png"))
                await wait_for(page, f"{STATE} === 'listening'", 30)
                await page.wait_for_timeout(300)
                await page.screenshot(path=str(out / "listening.png"))
                await page.evaluate("window.voxline.hangUp()")
            async with chromium(None, grant_mic=False) as browser:
                page = await (await browser.new_context(viewport=VIEW)).new_page()
                await page.goto(srv.base + "/web/restaurant")
                await page.evaluate("window.voxline.start()")
                await wait_for(page, f"{STATE} === 'error'", 30)
                await page.wait_for_timeout(300)
                await page.screenshot(path=str(out / "error.png"))


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/widget")
    target.mkdir(parents=True, exist_ok=True)
    asyncio.run(shots(target))
