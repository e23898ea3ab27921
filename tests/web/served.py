"""``voxline serve`` as a subprocess on 127.0.0.1, the way a deployment runs it, with
an agent on the default local models (Whisper base, llama.cpp Qwen 0.5B, Piper),
and somebody's website on another origin that embeds its widget."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .kit import embed_page

# No stt/llm/tts blocks: the defaults are the local models. A long VAD stop keeps a
# read sentence one segment (Whisper does worse on fragments).
AGENT = """\
name: restaurant
greeting: "Hello, how can I help?"
prompt: "You answer visitors on a restaurant's website. Reply in one short sentence."
vad: {start_secs: 0.15, stop_secs: 0.8}
turn: {strategy: silence, stop_secs: 0.3}
idle: {reprompt_after_secs: 60, max_reprompts: 0}
web: {sessions_per_minute: 100}
memory: {remember: false}  # calls are recorded; no end-of-call summary (an LLM pass per call)
"""


@dataclass
class Served:
    base: str  # the voxline server
    site: str  # the website that embeds the widget (another origin)
    database_url: str
    log: Path

    def errors(self) -> list[str]:
        """ERROR lines of every worker (voxline, uvicorn and Pipecat's loguru formats)."""
        return [line for line in self.log.read_text().splitlines()
                if " ERROR " in line or line.startswith("ERROR:") or "| ERROR " in line]

    async def calls(self, call_ids: list[str], timeout: float = 20.0) -> list[object]:
        """The closed call records of ``call_ids``, read from the server's store."""
        from voxline.memory.store import open_store

        store = await open_store(self.database_url, migrate=False)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while True:
                records = [await store.find_call(c) for c in call_ids]
                if all(r is not None and r.ended_at is not None for r in records) or loop.time() > deadline:
                    return records
                await asyncio.sleep(0.2)
        finally:
            await store.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _site(html: str) -> Iterator[str]:
    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def _migrate(database_url: str) -> None:
    # Workers that start on a fresh SQLite file at once race to create its tables.
    from voxline.memory.store import open_store

    await (await open_store(database_url)).close()


@contextlib.contextmanager
def voxline_serve(tmp: Path, *, workers: int, startup_secs: float = 120.0) -> Iterator[Served]:
    agents = tmp / "agents"
    (agents / "restaurant").mkdir(parents=True)
    (agents / "restaurant" / "agent.yaml").write_text(AGENT)
    database_url = str(tmp / "voxline.db")
    migrate = threading.Thread(target=asyncio.run, args=(_migrate(database_url),))  # off the test's loop
    migrate.start()
    migrate.join()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp / "serve.log"
    with _site(embed_page(base, autostart="1")) as site, log.open("w") as out:
        env = {**os.environ, "DATABASE_URL": database_url, "VOXLINE_ALLOWED_ORIGINS": site,
               "VOXLINE_WEBRTC_HOST_ADDRESSES": "127.0.0.1", "TWILIO_ACCOUNT_SID": "", "TWILIO_AUTH_TOKEN": ""}
        env.pop("REDIS_URL", None)
        server = subprocess.Popen(
            [sys.executable, "-m", "voxline.cli", "serve", "--agents", str(agents), "--port", str(port),
             "--workers", str(workers)], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
        try:
            deadline = time.monotonic() + startup_secs
            # Every worker loads its models, then says so; the parent exits if one fails.
            while log.read_text().count("Application startup complete.") < workers:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"voxline serve did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)
            yield Served(base=base, site=site, database_url=database_url, log=log)
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(5)
