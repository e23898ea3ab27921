"""What every vendor fake shares: a real aiohttp server on 127.0.0.1:0, a record of the
requests it got, and the failure knobs (`Faults`) used by failover tests.

    async with FakeSomething(...) as fake:      # started on a free port
        service = Service(base_url=fake.url)    # http://127.0.0.1:PORT (ws_url for ws://)
        fake.faults.status = 503                # every later request is refused with 503
        await fake.wait_until(lambda: fake.requests)

One server can speak HTTP and websockets at once, so a vendor's REST and streaming
endpoints live behind the same base URL, as they do at the vendor.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Faults:
    """Failure injection, read on every request (or websocket handshake).

    status: refuse the request with this HTTP status (a websocket handshake too),
        with the vendor's error body. `times` limits it to the first N requests.
    first_byte_delay: seconds before the first byte (HTTP) or message (websocket).
    stall_after_first_chunk: send the first chunk/message, then nothing more while the
        connection stays open, until `release()` (or the server stops).
    close_mid_stream: send the first chunk/message, then close the TCP connection with
        no terminator: no `[DONE]`/`message_stop`/last chunk, no websocket close frame.
    """

    status: int | None = None
    times: int | None = None
    first_byte_delay: float = 0.0
    stall_after_first_chunk: bool = False
    close_mid_stream: bool = False
    refused: int = 0
    _released: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def refusal(self) -> int | None:
        """The status to refuse this request with, if any (counts towards `times`)."""
        if self.status is None or (self.times is not None and self.refused >= self.times):
            return None
        self.refused += 1
        return self.status

    def release(self) -> None:
        self._released.set()

    async def before_first(self) -> None:
        if self.first_byte_delay:
            await asyncio.sleep(self.first_byte_delay)

    async def after_first(self, transport: asyncio.BaseTransport | None) -> bool:
        """Apply the mid-stream faults once the first chunk is out; False: stop sending."""
        if self.close_mid_stream:
            if transport is not None:
                transport.close()
            return False
        if self.stall_after_first_chunk:
            await self._released.wait()
        return True


@dataclass
class Received:
    """One HTTP request or websocket connection as the fake saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any = None  # parsed JSON, form fields, or bytes
    messages: list[Any] = field(default_factory=list)  # websocket text messages (parsed JSON)


def received(request: web.Request, body: Any = None) -> Received:
    return Received(request.method, request.path, dict(request.query),
                    {k.lower(): v for k, v in request.headers.items()}, body)


class LoopbackServer:
    """Base of the fakes: subclasses return their routes from `routes()`."""

    def __init__(self) -> None:
        self.faults = Faults()
        self.requests: list[Received] = []
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self._changed = asyncio.Condition()

    # -- lifecycle ---------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    base_url = url

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.add_routes(self.routes())
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        self.faults.release()
        for ws in list(self._sockets):
            await ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self):  # noqa: ANN204 - returns the subclass
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- recording ---------------------------------------------------------------
    async def changed(self) -> None:
        """Call after recording something, to wake `wait_until`."""
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until `predicate()` is truthy (re-checked whenever the fake records)."""
        async with self._changed:
            return await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    async def record(self, request: web.Request, body: Any = None) -> Received:
        entry = received(request, body)
        self.requests.append(entry)
        await self.changed()
        return entry

    # -- answering ---------------------------------------------------------------
    async def stream(self, request: web.Request, chunks: Iterable[bytes | str] | AsyncIterable[bytes | str],
                     content_type: str, status: int = 200,
                     headers: dict[str, str] | None = None) -> web.StreamResponse:
        """A chunked response, with the delay/stall/close faults applied."""
        response = web.StreamResponse(status=status, headers={"Content-Type": content_type, **(headers or {})})
        await self.faults.before_first()
        await response.prepare(request)
        first = True
        async for chunk in _aiter(chunks):
            await response.write(chunk.encode() if isinstance(chunk, str) else chunk)
            if first:
                first = False
                if not await self.faults.after_first(request.transport):
                    return response
        await response.write_eof()
        return response

    async def open_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=64 * 1024 * 1024)
        await ws.prepare(request)
        self._sockets.add(ws)
        return ws

    def forget_ws(self, ws: web.WebSocketResponse) -> None:
        self._sockets.discard(ws)


class WsSender:
    """Sends JSON messages on one websocket, applying the faults around the first one."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, faults: Faults,
                 sent: list[dict[str, Any]]) -> None:
        self.ws, self.request, self.faults, self.sent = ws, request, faults, sent
        self.dead = False

    async def send(self, message: dict[str, Any]) -> None:
        if self.dead or self.ws.closed:
            return
        if not self.sent:
            await self.faults.before_first()
        await self.ws.send_str(json.dumps(message))
        self.sent.append(message)
        if len(self.sent) == 1 and not await self.faults.after_first(self.request.transport):
            self.dead = True


async def _aiter(chunks: Iterable[bytes | str] | AsyncIterable[bytes | str]):
    if isinstance(chunks, AsyncIterable):
        async for chunk in chunks:
            yield chunk
    else:
        for chunk in chunks:
            yield chunk


def json_error(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)
