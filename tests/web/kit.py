"""Web test kit: fake STT/LLM/TTS at 16 kHz, real recorded speech as the fake microphone,
a call host with the web routes under uvicorn, headless Chromium with Playwright."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import shutil
import subprocess
import tempfile
import wave
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soxr
from fastapi import FastAPI
from pipecat.frames.frames import Frame, TranscriptionFrame, TTSAudioRawFrame
from pipecat.services.settings import STTSettings, TTSSettings
from pipecat.services.stt_service import SegmentedSTTService
from pipecat.services.tts_service import TTSService
from pipecat.utils.time import time_now_iso8601

from tests.fakes.twilio_loopback import serve
from tests.phone.kit import ScriptedLLM, unset
from voxline.memory.live import InProcessLiveState
from voxline.pipelines.builder import Services
from voxline.pipelines.host import CallHost
from voxline.pipelines.limits import CallLimits
from voxline.spec import AgentSpec, parse_spec
from voxline.transports.web import WebConfig, web_router
from voxline.web_settings import WebSettings

RATE = 16000
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
CHROMIUM = "/usr/bin/chromium"
SECRET = b"test-server-secret"
WIDGET_SECRET = b"test-widget-secret"


@functools.lru_cache(maxsize=64)
def espeak(text: str, rate: int = RATE) -> bytes:
    """Real synthesized speech (espeak-ng), 16-bit mono PCM at ``rate``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-s", "170", "-w", str(path), text], check=True)
        with wave.open(str(path)) as w:
            src, raw = w.getframerate(), w.readframes(w.getnframes())
    out = soxr.resample(np.frombuffer(raw, dtype=np.int16).astype(np.float32), src, rate)
    return np.clip(out, -32768, 32767).astype(np.int16).tobytes()


def librivox(name: str) -> np.ndarray:
    with wave.open(str(LIBRIVOX / f"sense_and_sensibility_01_austen_64kb-{name}.wav")) as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def mic_wav(path: Path, *parts: tuple[float, str | None]) -> Path:
    """A fake-microphone WAV: ``(silence_secs, clip or None)`` pieces, 16 kHz mono."""
    chunks = []
    for secs, clip in parts:
        chunks.append(np.zeros(int(RATE * secs), dtype=np.int16))
        if clip:
            chunks.append(librivox(clip))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.concatenate(chunks).tobytes())
    return path


class ScriptedSTT(SegmentedSTTService):
    """The next scripted transcript for each VAD speech segment (16 kHz)."""

    def __init__(self, transcripts: list[str]) -> None:
        super().__init__(sample_rate=RATE, trailing_silence_secs=0, settings=unset(STTSettings))
        self._script = list(transcripts)
        self.segments: list[int] = []

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        self.segments.append(len(audio))
        text = self._script.pop(0) if self._script else "..."
        yield TranscriptionFrame(text, "visitor", time_now_iso8601())


class SpeechTTS(TTSService):
    """espeak-ng at 16 kHz in 100 ms frames, like a streaming TTS."""

    def __init__(self) -> None:
        super().__init__(push_start_frame=True, push_stop_frames=True, sample_rate=RATE,
                         settings=unset(TTSSettings))

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        pcm = await asyncio.to_thread(espeak, text.strip())
        step = RATE * 2 // 10
        for i in range(0, len(pcm), step):
            yield TTSAudioRawFrame(pcm[i:i + step], RATE, 1, context_id=context_id)


@dataclass
class Script:
    greeting: str = "Hello, welcome to the restaurant."
    transcripts: list[str] = field(default_factory=list)
    reply: Callable[[str], Any] = lambda text: "We are open from noon until ten."
    allowed_origins: tuple[str, ...] = ()
    max_concurrent_calls: int | None = None
    memory: bool = True


def agent_data(script: Script) -> dict[str, Any]:
    """The test agent as its YAML would say it."""
    data: dict[str, Any] = {
        "name": "restaurant",
        "greeting": script.greeting,
        "prompt": "You are a test agent.",
        "turn": {"strategy": "silence", "stop_secs": 0.3},
        "vad": {"start_secs": 0.15, "stop_secs": 0.4},
        "idle": {"reprompt_after_secs": 60, "max_reprompts": 0},
        "tools": [{"name": "end_call", "handler": "builtin:end_call"}],
        "memory": {"enabled": script.memory},
    }
    if script.max_concurrent_calls:
        data["limits"] = {"max_concurrent_calls": script.max_concurrent_calls}
    return data


def agent_spec(script: Script, base_dir: Path) -> AgentSpec:
    spec = parse_spec(agent_data(script), base_dir=base_dir)
    return with_web(spec, WebSettings(allowed_origins=script.allowed_origins))


def with_web(spec: AgentSpec, web: WebSettings) -> AgentSpec:
    """The spec with a ``web:`` block (a subclass until AgentSpec has the field)."""
    if "web" in AgentSpec.model_fields:
        return spec.model_copy(update={"web": web})
    fields = {k: getattr(spec, k) for k in AgentSpec.model_fields}
    return _WebSpec.model_construct(**fields, web=web)


class _WebSpec(AgentSpec):
    web: WebSettings = WebSettings()


def fake_services(script: Script, made: list[Services] | None = None) -> Callable[[AgentSpec, int], Services]:
    def make(spec: AgentSpec, sample_rate: int = RATE) -> Services:
        assert sample_rate == RATE
        services = Services(stt=ScriptedSTT(list(script.transcripts)), llm=ScriptedLLM(script.reply),
                            tts=SpeechTTS())
        if made is not None:
            made.append(services)
        return services

    return make


@dataclass
class WebServer:
    base: str
    host: CallHost
    app: FastAPI
    made: list[Services]


@contextlib.asynccontextmanager
async def web_server(tmp_path: Path, script: Script, *, services: Any = None,
                     config: WebConfig | None = None, allowed: tuple[str, ...] = (),
                     spec: AgentSpec | None = None) -> AsyncIterator[WebServer]:
    spec = spec or agent_spec(script, tmp_path)
    made: list[Services] = []
    host = CallHost({"restaurant": spec}, services=services or fake_services(script, made),
                    limits=CallLimits(), live=InProcessLiveState(), recording_dir=tmp_path / "rec")
    await host.start(str(tmp_path / "voxline.db"))
    cfg = config or WebConfig(host_addresses=("127.0.0.1",), widget_secret=WIDGET_SECRET, connect_timeout_secs=6)
    router = web_router(host, allowed_origins=list(allowed), ice_servers=[], secret=SECRET, config=cfg)
    app = FastAPI()
    app.include_router(router)
    try:
        async with serve(app) as base:
            yield WebServer(base, host, app, made)
    finally:
        await router.close()
        await host.close()


def site_app(html: str) -> FastAPI:
    """Somebody's website: one page that embeds the widget."""
    from fastapi.responses import HTMLResponse

    app = FastAPI()

    @app.get("/")
    async def page() -> HTMLResponse:
        return HTMLResponse(html)

    return app


def embed_page(server: str, **attrs: str) -> str:
    extra = " ".join(f'data-{k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return (f"<!doctype html><html><head><title>Site</title></head><body><h1>A site</h1>"
            f'<script src="{server}/widget.js" data-agent="restaurant" {extra}></script></body></html>')


CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream", "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required", "--no-sandbox", "--disable-gpu", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-features=WebRtcHideLocalIpsWithMdns", "--disable-dev-shm-usage",
]


@contextlib.asynccontextmanager
async def chromium(mic: Path | None = None, *, grant_mic: bool = True,
                   extra: list[str] = ()) -> AsyncIterator[Any]:
    """Headless Debian chromium under Playwright; ``mic`` plays as the microphone."""
    from playwright.async_api import async_playwright

    if not shutil.which(CHROMIUM):
        raise RuntimeError(f"{CHROMIUM} is missing: install Debian's chromium (make system-deps)")
    args = list(CHROMIUM_ARGS) + list(extra)
    if grant_mic:
        args.append("--use-fake-ui-for-media-stream")
    if mic is not None:
        args.append(f"--use-file-for-fake-audio-capture={mic}%noloop")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            yield browser
        finally:
            await browser.close()


# A network where WebRTC cannot connect: relay candidates only, and no TURN server.
BLOCK_WEBRTC = """
(() => {
  const Native = window.RTCPeerConnection;
  function Blocked(config, ...rest) { return new Native({ ...(config || {}), iceTransportPolicy: "relay" }, ...rest); }
  Blocked.prototype = Native.prototype;
  Object.setPrototypeOf(Blocked, Native);
  window.RTCPeerConnection = Blocked;
})();
"""


async def wait_for(page: Any, expression: str, timeout: float = 20.0) -> Any:
    """Poll a JS expression in the page until it is truthy (bounded)."""
    await page.wait_for_function(expression, timeout=timeout * 1000, polling=50)
    return await page.evaluate(expression)


STATE = "document.querySelector('[data-voxline-state]')?.getAttribute('data-voxline-state')"
LINES = "[...document.querySelector('#voxline-widget').shadowRoot.querySelectorAll('[data-voxline-line]')]"
# Each caption as [side, text, interrupted]; side is "agent" or "visitor".
CAPTIONS = f"{LINES}.map(e => [e.dataset.voxlineLine, e.textContent, e.hasAttribute('data-voxline-interrupted')])"
STATS = "window.voxline && window.voxline.stats"
