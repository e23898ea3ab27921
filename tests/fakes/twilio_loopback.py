"""Run an ASGI app under a real uvicorn server on 127.0.0.1:0 (shared by Twilio fakes/tests)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

WS_MAX_SIZE = 64 * 1024  # what voxline.server.serve gives uvicorn


@asynccontextmanager
async def serve(app: object, *, ws_max_queue: int = 32, ws_max_size: int = WS_MAX_SIZE,
                proxy_headers: bool = False) -> AsyncIterator[str]:
    """Yield http://127.0.0.1:PORT while the server runs; shut it down afterwards.

    As ``voxline.server.serve`` runs uvicorn: one websocket message is bounded by
    ``ws_max_size``, and X-Forwarded-* are left alone unless ``proxy_headers``
    (``VOXLINE_TRUST_PROXY=1``).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="error", lifespan="auto", ws="websockets",
                            ws_max_queue=ws_max_queue, ws_max_size=ws_max_size,
                            ws_per_message_deflate=False, proxy_headers=proxy_headers)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, 5)
        except TimeoutError:
            task.cancel()
        sock.close()
