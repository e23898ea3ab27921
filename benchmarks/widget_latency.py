"""Web widget latency and density, measured at the browser, next to the same agent's phone figure.

    .venv/bin/python benchmarks/widget_latency.py [--sessions 8] [--calls 8] [--concurrent 4] [--local-models]

One ``create_app`` server (web and Twilio routes on one call host) runs in this process
under uvicorn on 127.0.0.1, with the test fakes: scripted STT and LLM, an espeak-ng
voice, so no model time -- what is measured is the transports (``--local-models``: the
agent's default local models, loaded at startup as ``voxline serve`` does). The agent is
the same for both (spec, turn-taking, services; 16 kHz on the web, 8 kHz on the phone).

- Web: each session is a page on another origin that autostarts the widget in headless
  Chromium; its microphone is a LibriVox clip after 4 s of silence. Times are taken in
  the page: WebRTC connected (the page's peer connection), bot-ready, the greeting's
  first audible audio at the widget's meter, and the microphone's last loud 10 ms.
- Phone: a Twilio-like media stream on loopback (signed webhook, ``start``, 20 ms μ-law
  frames in real time) says the same clip, 8 kHz; times are taken where Twilio would
  receive the media.

Prints one JSON object:

The first web session and phone call of the process warm it up (``cold_first_session``
says what that first session took) and are not counted.

- ``connected_to_first_audio_ms``: WebRTC connected → the greeting's first audio at the
  page (target ≤ 300 ms); ``greeting_breakdown_ms`` splits it (p50): the server seeing the
  connection, building and starting the call, the greeting's first audio leaving the
  output transport, and reaching the page's meter through WebRTC and the jitter buffer;
- ``voice_to_voice_ms``: end of the visitor's speech → first audio of the answer, at the
  page; ``phone.voice_to_voice_ms``: the same at the phone stream's edge;
  ``browser_minus_phone_ms`` and ``browser_over_phone`` compare the two (target: within
  50 ms). The phone figure stops where Twilio receives the audio, before its network and
  the handset play it; ``browser_less_playout_minus_phone_ms`` takes the browser's playout
  (output transport → page meter, as timed on the greeting) out of the web figure;
- ``concurrent``: K sessions at once: this process's CPU per session (share of a core).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soxr
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.twilio_loopback import serve  # noqa: E402
from tests.fakes.twilio_media import FakeTwilioCall, ulaw_to_pcm  # noqa: E402
from tests.fakes.twilio_rest import FakeTwilioRest, stream_of  # noqa: E402
from tests.web.kit import Script, agent_data, chromium, embed_page, librivox, mic_wav, wait_for  # noqa: E402

SPEECH_AT, CLIP = 4.0, "0880"  # 2.99 s of speech
NUMBER, ACCOUNT, TOKEN = "+15550001111", "AC00000000000000000000000000000000", "bench-token"
LOUD = 0.01  # RMS, full scale = 1: the mic's speech, in the page and on the phone alike
AUDIBLE = 0.0025  # RMS: the widget meter's threshold for agent audio (level 0.01 = RMS × 4)
LOCAL_MODELS = False  # --local-models: Whisper base, llama.cpp Qwen 0.5B and Piper instead of the fakes
SCRIPT = Script(greeting="Hello.", transcripts=["what time do you open"] * 100, memory=False,
                reply=lambda text: "We are open from noon.")

# In the page: when its peer connection connected, and when its microphone was last loud.
PAGE_PROBES = """
(() => {
  const vx = window.__vx = { pcConnectedAt: null, micLoudFirst: null, micLoudLast: null };
  const Native = window.RTCPeerConnection;
  function Tapped(...args) {
    const pc = new Native(...args);
    pc.addEventListener("connectionstatechange", () => {
      if (pc.connectionState === "connected" && vx.pcConnectedAt === null) vx.pcConnectedAt = performance.now();
    });
    return pc;
  }
  Tapped.prototype = Native.prototype;
  Object.setPrototypeOf(Tapped, Native);
  window.RTCPeerConnection = Tapped;
  const getUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (constraints) => {
    const stream = await getUserMedia(constraints);
    const context = new AudioContext();
    const analyser = context.createAnalyser();
    analyser.fftSize = 256;
    context.createMediaStreamSource(stream).connect(analyser);
    const data = new Float32Array(analyser.fftSize);
    setInterval(() => {
      analyser.getFloatTimeDomainData(data);
      let sum = 0;
      for (const x of data) sum += x * x;
      if (Math.sqrt(sum / data.length) > %LOUD%) {
        const now = performance.now();
        if (vx.micLoudFirst === null) vx.micLoudFirst = now;
        vx.micLoudLast = now;
      }
    }, 10);
    return stream;
  };
})();
""".replace("%LOUD%", str(LOUD))


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))], 1)


def summary(values: list[float | None]) -> dict[str, Any]:
    got = [v for v in values if v is not None]
    return {"p50": pct(got, 0.5), "p95": pct(got, 0.95), "n": len(got)}


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768
    return float(np.sqrt(np.mean(samples * samples))) if samples.size else 0.0


# -- server-side marks (epoch ms), per web session ---------------------------------------
MARKS: dict[str, dict[str, float]] = {}


def mark_web_calls() -> None:
    """Time a web call where the server sees it: handed to the host, its pipeline started,
    the first audible audio after the output transport."""
    from pipecat.frames.frames import OutputAudioRawFrame, StartFrame

    from voxline.transports.web import router

    run = router.run_web_call

    async def timed(host: Any, grant: Any, transport: Any, call: Any, *, carrier: str) -> None:
        marks = MARKS.setdefault(grant.session_id, {"run": time.time() * 1000})
        clock, seen = call.clock, call.clock.process_frame

        async def process_frame(frame: Any, direction: Any) -> None:
            if isinstance(frame, StartFrame):
                marks.setdefault("started", time.time() * 1000)
            elif isinstance(frame, OutputAudioRawFrame) and "audio_out" not in marks and rms(frame.audio) > AUDIBLE:
                marks["audio_out"] = time.time() * 1000
            await seen(frame, direction)

        clock.process_frame = process_frame
        await run(host, grant, transport, call, carrier=carrier)

    router.run_web_call = timed


# -- one web session, one phone call ---------------------------------------------------------
async def web_session(browser: Any, site: str) -> dict[str, Any]:
    page = await browser.new_page()
    try:
        await page.add_init_script(PAGE_PROBES)
        await page.goto(site)
        await wait_for(page, "window.voxline && window.voxline.stats.edges && "
                             "window.voxline.stats.edges.filter(e => e[1]).length >= 2", 40)
        stats = await page.evaluate("window.voxline.stats")
        probes = await page.evaluate("window.__vx")
        origin = await page.evaluate("performance.timeOrigin")
        await page.evaluate("window.voxline.hangUp()")
    finally:
        await page.close()
    connected, audio = probes["pcConnectedAt"], stats["firstAudioAt"]
    speech_end = probes["micLoudLast"]
    answer = next((t for t, on in stats["edges"] if on and speech_end and t > speech_end), None)
    server = MARKS.get(stats["sessionId"], {})
    epoch = {k: v - origin for k, v in server.items()}  # server marks on the page's clock
    playout = audio - epoch["audio_out"] if "audio_out" in epoch else None
    return {
        # What the phone figure leaves out: the browser playing the answer (estimated by
        # how long the greeting took from the output transport to the page's meter).
        "voice_to_voice_less_playout": answer - speech_end - playout if answer and playout is not None else None,
        "load_to_connected": connected - stats["loadedAt"] if connected else None,
        "connected_to_first_audio": audio - connected if connected else None,
        "ready_to_first_audio": audio - stats["connectedAt"],
        "voice_to_voice": answer - speech_end if answer else None,
        "breakdown": {
            "server_sees_connection": epoch["run"] - connected if connected and "run" in epoch else None,
            "call_built_and_started": epoch["started"] - epoch["run"] if "started" in epoch else None,
            "greeting_leaves_output": epoch["audio_out"] - epoch["started"] if "audio_out" in epoch else None,
            "output_to_page_meter": playout,
            "bot_ready_after_connected": stats["connectedAt"] - connected if connected else None,
        },
    }


def audible_after(call: FakeTwilioCall, since: float) -> float | None:
    for received in call.received:
        message = received.message
        if received.at > since and message.get("event") == "media":
            if rms(ulaw_to_pcm(base64.b64decode(message["media"]["payload"]))) > AUDIBLE:
                return received.at
    return None


async def until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def phone_call(base: str, rest: FakeTwilioRest, n: int, clip8k: bytes, quiet_tail: int) -> dict[str, Any]:
    sid = f"CA{n:032d}"
    response = await rest.ring(base + "/twilio/voice", sid, from_="+15557654321", to=NUMBER)
    url, params = stream_of(response.text)
    call = FakeTwilioCall(url, call_sid=sid, account_sid=ACCOUNT, parameters=params, auth_token=TOKEN)
    await call.connect()
    try:
        # The greeting played out: audio came, then 0.8 s without any.
        await until(lambda: bool(call.media_arrivals) and time.monotonic() - call.media_arrivals[-1][0] > 0.8, 20)
        greeting = audible_after(call, 0.0)
        call.say(clip8k)
        await call.wait_said()
        said_at = time.monotonic()  # the clip's last frame goes out now
        speech_end = said_at - quiet_tail * 0.02  # ... its last loud frame went out earlier
        await until(lambda: audible_after(call, said_at) is not None, 20)
        answer = audible_after(call, said_at)
    finally:
        await call.stop()
    return {
        "start_to_first_audio": (greeting - call.start_sent_at) * 1000 if greeting and call.start_sent_at else None,
        "voice_to_voice": (answer - speech_end) * 1000 if answer else None,
    }


def phone_clip() -> tuple[bytes, int]:
    """The LibriVox clip at 8 kHz, and how many of its last 20 ms frames are quiet."""
    pcm16k = librivox(CLIP).astype(np.float32)
    pcm = np.clip(soxr.resample(pcm16k, 16000, 8000), -32768, 32767).astype(np.int16).tobytes()
    frames = [pcm[i:i + 320] for i in range(0, len(pcm), 320)]
    loud = [i for i, f in enumerate(frames) if rms(f) > LOUD]
    return pcm, len(frames) - 1 - loud[-1]


# -- the server: one call host, web and phone routes ---------------------------------------
def services(spec: Any, sample_rate: int) -> Any:
    from tests.phone import kit as phone_kit
    from tests.web.kit import fake_services
    from voxline.pipelines.builder import Services
    from voxline.pipelines.host import default_services

    if LOCAL_MODELS:
        return default_services(spec, sample_rate)
    if sample_rate == 16000:
        return fake_services(SCRIPT)(spec, sample_rate)
    return Services(stt=phone_kit.ScriptedSTT(list(SCRIPT.transcripts)), llm=phone_kit.ScriptedLLM(SCRIPT.reply),
                    tts=phone_kit.SpeechTTS())


@contextlib.asynccontextmanager
async def voxline_app(tmp: Path, site: str) -> Any:
    from voxline.server import create_app
    from voxline.transports.twilio import TwilioConfig, TwilioRestClient

    agents = tmp / "agents"
    (agents / "restaurant").mkdir(parents=True)
    spec = {**agent_data(SCRIPT), "web": {"sessions_per_minute": 600}}
    (agents / "restaurant" / "agent.yaml").write_text(yaml.safe_dump(spec))
    (agents / "routes.yaml").write_text(yaml.safe_dump({"numbers": {NUMBER: "restaurant"}}))
    os.environ.update({"VOXLINE_ALLOWED_ORIGINS": site, "VOXLINE_WEBRTC_HOST_ADDRESSES": "127.0.0.1"})
    fake = FakeTwilioRest(ACCOUNT, TOKEN)
    async with serve(fake.app) as rest_base:
        rest = TwilioRestClient(ACCOUNT, TOKEN, base_url=rest_base)
        app = create_app(agents, twilio=TwilioConfig(account_sid=ACCOUNT, auth_token=TOKEN, api_base_url=rest_base),
                         rest=rest, services=services, database_url=str(tmp / "voxline.db"), remember=False,
                         preload=LOCAL_MODELS,
                         recording_dir=tmp / "rec")
        async with serve(app) as base:
            yield base, fake
        await rest.aclose()


@contextlib.asynccontextmanager
async def website() -> Any:
    """Somebody's site on another origin; its page is set once the server's address is known."""
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse

    page = {"html": ""}
    app = FastAPI()

    @app.get("/")
    async def index() -> HTMLResponse:
        return HTMLResponse(page["html"])

    async with serve(app) as base:
        yield base, page


async def main(sessions: int, calls: int, concurrent: int) -> dict[str, Any]:
    load_before = os.getloadavg()
    mark_web_calls()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        mic = mic_wav(tmp / "mic.wav", (SPEECH_AT, CLIP), (6.0, None))
        clip8k, quiet_tail = phone_clip()
        async with website() as (site, page), voxline_app(tmp, site) as (base, rest):
            page["html"] = embed_page(base, autostart="1")
            async with chromium(mic) as browser:
                # The first call of a process pays for lazy imports (the fake LLM's adapter
                # pulls in openai, ~0.8 s); `voxline serve` preloads them with its models.
                cold = await web_session(browser, site)
                await phone_call(base, rest, calls, clip8k, quiet_tail)
                web = [await web_session(browser, site) for _ in range(sessions)]
                phone = [await phone_call(base, rest, n, clip8k, quiet_tail) for n in range(calls)]
                # K at once: CPU of this (server) process while they talk.
                tasks = [asyncio.create_task(web_session(browser, site)) for _ in range(concurrent)]
                await asyncio.sleep(3.0)  # all connected and greeted
                cpu0, wall0 = time.process_time(), time.monotonic()
                await asyncio.sleep(6.0)
                cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
                await asyncio.gather(*tasks, return_exceptions=True)
    per_session = cpu / wall / concurrent
    web_v2v, phone_v2v = summary([r["voice_to_voice"] for r in web]), summary([r["voice_to_voice"] for r in phone])
    first_audio = summary([r["connected_to_first_audio"] for r in web])
    less_playout = summary([r["voice_to_voice_less_playout"] for r in web])

    def compare(q: str, web_v2v: dict[str, Any] = web_v2v) -> tuple[float | None, float | None]:
        a, b = web_v2v[q], phone_v2v[q]
        return (round(a - b, 1), round(a / b, 3)) if a is not None and b else (None, None)

    return {
        "benchmark": "widget_latency",
        "transport": "webrtc",
        "sessions": sessions,
        "load_to_connected_ms": summary([r["load_to_connected"] for r in web]),
        "connected_to_first_audio_ms": first_audio,
        "cold_first_session": {"connected_to_first_audio_ms": cold["connected_to_first_audio"],
                               "call_built_and_started_ms": cold["breakdown"]["call_built_and_started"]},
        "ready_to_first_audio_ms": summary([r["ready_to_first_audio"] for r in web]),
        "greeting_breakdown_ms": {k: summary([r["breakdown"][k] for r in web])["p50"] for k in web[0]["breakdown"]},
        "voice_to_voice_ms": web_v2v,
        "phone": {"calls": calls, "start_to_first_audio_ms": summary([r["start_to_first_audio"] for r in phone]),
                  "voice_to_voice_ms": phone_v2v},
        "browser_minus_phone_ms": {"p50": compare("p50")[0], "p95": compare("p95")[0]},
        "browser_over_phone": {"p50": compare("p50")[1], "p95": compare("p95")[1]},
        "browser_less_playout_minus_phone_ms": {"p50": compare("p50", less_playout)[0],
                                                "p95": compare("p95", less_playout)[0]},
        "targets": {"first_audio_p95_le_300ms": first_audio["p95"] is not None and first_audio["p95"] <= 300,
                    "voice_to_voice_p50_within_50ms_of_phone":
                        compare("p50")[0] is not None and abs(compare("p50")[0]) <= 50},
        "concurrent": {"sessions": concurrent, "cpu_per_session": round(per_session, 3),
                       "sessions_per_core": round(1 / per_session, 1) if per_session > 0 else None},
        "load_average": {"before": [round(x, 2) for x in load_before],
                         "after": [round(x, 2) for x in os.getloadavg()]},
        "models": "local: Whisper base, llama.cpp Qwen 0.5B, Piper" if LOCAL_MODELS
                  else "fakes: scripted STT/LLM, espeak-ng TTS",
        "note": "browser, phone client and server on one 2-core machine",
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--concurrent", type=int, default=4)
    parser.add_argument("--local-models", action="store_true", help="the default local models, not the fakes")
    args = parser.parse_args()
    LOCAL_MODELS = args.local_models
    print(json.dumps(asyncio.run(main(args.sessions, args.calls, args.concurrent))))
