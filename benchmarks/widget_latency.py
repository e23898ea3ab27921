"""Web widget latency and density, measured at the browser (headless Chromium).

    .venv/bin/python benchmarks/widget_latency.py [--sessions 5] [--concurrent 4]

The call host with the web routes runs in this process under uvicorn on 127.0.0.1,
with the test fakes (scripted STT and LLM, espeak-ng voice: no model time). Each
session is a page on another origin that autostarts the widget; its microphone is a
LibriVox clip after 4 s of silence. Prints one JSON object:

- ``load_to_connected_ms``: widget start (page load) to bot-ready, p50/p95;
- ``connected_to_first_audio_ms``: bot-ready to the greeting's first audio at the page;
- ``voice_to_voice_ms``: end of the visitor's speech (known from the clip) to the
  answer's first audio at the page;
- ``concurrent``: K sessions at once: this server process's CPU per session (share of
  one core) and the sessions a core would hold at that rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.twilio_loopback import serve  # noqa: E402
from tests.web.kit import Script, chromium, embed_page, mic_wav, site_app, wait_for, web_server  # noqa: E402

SPEECH_AT, CLIP = 4.0, "0880"  # 2.99 s of speech
CLIP_SECS = 2.99


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))], 1)


def summary(values: list[float]) -> dict[str, float | None]:
    return {"p50": pct(values, 0.5), "p95": pct(values, 0.95), "n": len(values)}


async def one_session(browser, site: str) -> dict:  # type: ignore[no-untyped-def]
    page = await browser.new_page()
    try:
        await page.goto(site)
        await wait_for(page, "window.voxline && window.voxline.stats.edges && "
                             "window.voxline.stats.edges.filter(e => e[1]).length >= 2", 40)
        stats = await page.evaluate("window.voxline.stats")
        await page.evaluate("window.voxline.hangUp()")
    finally:
        await page.close()
    speech_end = stats["micAt"] + (SPEECH_AT + CLIP_SECS) * 1000
    answer = next((t for t, on in stats["edges"] if on and t > speech_end), None)
    return {
        "load_to_connected": stats["connectedAt"] - stats["loadedAt"],
        "first_audio": stats["firstAudioAt"] - stats["connectedAt"],
        "voice_to_voice": answer - speech_end if answer else None,
    }


async def main(sessions: int, concurrent: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        mic = mic_wav(tmp / "mic.wav", (SPEECH_AT, CLIP), (6.0, None))
        script = Script(greeting="Hello.", transcripts=["what time do you open"] * 100, memory=False,
                        reply=lambda text: "We are open from noon.")
        async with web_server(tmp / "run", script) as srv:
            html = embed_page(srv.base, autostart="1")
            async with serve(site_app(html)) as site:
                from tests.web.test_browser import _allow

                srv.host.agents = {"restaurant": _allow(srv.host.agents["restaurant"], site)}
                async with chromium(mic) as browser:
                    runs = [await one_session(browser, site) for _ in range(sessions)]
                    # K at once: CPU of this (server) process while they talk.
                    tasks = [asyncio.create_task(one_session(browser, site)) for _ in range(concurrent)]
                    await asyncio.sleep(3.0)  # all connected and greeted
                    cpu0, wall0 = time.process_time(), time.monotonic()
                    await asyncio.sleep(6.0)
                    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
                    await asyncio.gather(*tasks, return_exceptions=True)
    per_session = cpu / wall / concurrent
    return {
        "benchmark": "widget_latency",
        "transport": "webrtc",
        "sessions": sessions,
        "load_to_connected_ms": summary([r["load_to_connected"] for r in runs]),
        "connected_to_first_audio_ms": summary([r["first_audio"] for r in runs]),
        "voice_to_voice_ms": summary([r["voice_to_voice"] for r in runs if r["voice_to_voice"] is not None]),
        "concurrent": {"sessions": concurrent, "cpu_per_session": round(per_session, 3),
                       "sessions_per_core": round(1 / per_session, 1) if per_session > 0 else None},
        "note": "fake STT/LLM/TTS; browser and server on one 2-core machine",
        "mean_voice_to_voice_ms": round(statistics.mean(
            [r["voice_to_voice"] for r in runs if r["voice_to_voice"] is not None] or [0]), 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--concurrent", type=int, default=4)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.sessions, args.concurrent))))
