"""WebRTC sessions with Pipecat's SmallWebRTC (aiortc): offer in, answer out, call on connect.

We use :class:`SmallWebRTCConnection` and :class:`SmallWebRTCTransport` as Pipecat's
request handler does, with four differences that the handler has no hooks for: the
offer must carry a verified session token; the call is handed to the host only once
the peer connection is *connected* (a greeting spoken earlier would be written to a
track nobody receives yet); the visitor's audio is buffered less (:mod:`.jitter`);
and a connection that never connects is closed after ``connect_timeout_secs``, its
session id given back so that the widget's WebSocket fallback can use the same token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from voxline.extras import require
from voxline.logsafe import clean

from .calls import SessionLedger
from .config import WebConfig
from .ice import ice_servers, keep_loopback_candidates, loopback_only, restrict_host_addresses
from .jitter import shorten_audio_buffers
from .tokens import SessionGrant

log = logging.getLogger("voxline.web")

RunCall = Callable[[SessionGrant, Any], Awaitable[None]]  # grant, SmallWebRTCConnection
MAX_SDP_CHARS = 20_000


class WebRTCSessions:
    def __init__(self, config: WebConfig, run_call: RunCall, ledger: SessionLedger) -> None:
        require("aiortc", "webrtc")
        self.config = config
        self.ledger = ledger
        self._run_call = run_call
        self._loopback = loopback_only(config.host_addresses)
        self._servers = ice_servers(config.ice_servers)
        self.pending: dict[str, asyncio.Task[None]] = {}  # session id -> waiting to connect
        self.peers: dict[str, Any] = {}  # pc_id -> connection (for trickled candidates)
        self._tasks: set[asyncio.Task[None]] = set()
        if config.host_addresses:
            restrict_host_addresses(config.host_addresses)

    async def offer(self, grant: SessionGrant, sdp: str, kind: str, *, pc_id: str | None = None,
                    restart: bool = False) -> dict[str, str] | None:
        """The SDP answer; None if the session already ran (one token, one call)."""
        from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection

        if kind != "offer" or not sdp or len(sdp) > MAX_SDP_CHARS:
            raise ValueError("expected an SDP offer")
        if self._loopback:
            sdp = keep_loopback_candidates(sdp)
        existing = self.peers.get(pc_id or "")
        if existing is not None and getattr(existing, "voxline_session", None) == grant.session_id:
            await existing.renegotiate(sdp=sdp, type=kind, restart_pc=restart)  # the widget's ICE restart
            shorten_audio_buffers(existing.pc)
            return existing.get_answer()
        if pc_id:
            # A restart for a peer this worker does not hold (another worker's, or gone):
            # a new connection here would run the session's call a second time.
            return None
        if not self.ledger.take(grant.session_id):
            return None
        connection = SmallWebRTCConnection(ice_servers=self._servers)
        connection.voxline_session = grant.session_id
        await connection.initialize(sdp=sdp, type=kind)
        shorten_audio_buffers(connection.pc)
        answer = connection.get_answer()
        if answer is None:
            self.ledger.give_back(grant.session_id)
            await connection.disconnect()
            raise RuntimeError("no SDP answer")
        self.peers[connection.pc_id] = connection
        task = asyncio.create_task(self._serve(grant, connection))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self.pending[grant.session_id] = task
        return answer

    async def add_candidates(self, pc_id: str, candidates: list[dict[str, Any]]) -> bool:
        """Candidates the browser trickled after its offer (usually none: it waits for gathering)."""
        from aiortc.sdp import candidate_from_sdp

        connection = self.peers.get(pc_id)
        if connection is None:
            return False  # another worker's peer, or gone: the offer carried the candidates
        for c in candidates[:32]:
            text = str(c.get("candidate") or "")
            if not text:
                continue
            candidate = candidate_from_sdp(text.removeprefix("candidate:"))
            if self._loopback and not candidate.ip.startswith("127."):
                continue
            candidate.sdpMid = c.get("sdp_mid")
            candidate.sdpMLineIndex = c.get("sdp_mline_index")
            await connection.add_ice_candidate(candidate)
        return True

    def cancel_pending(self, session_id: str) -> bool:
        """The widget gave up on WebRTC for this session (it falls back to the WebSocket)."""
        task = self.pending.pop(session_id, None)
        if task is None:
            return False
        task.cancel()
        self.ledger.give_back(session_id)
        return True

    async def _serve(self, grant: SessionGrant, connection: Any) -> None:
        sid = grant.session_id
        try:
            connected = await self._wait_connected(connection, self.config.connect_timeout_secs)
            if self.pending.pop(sid, None) is None:
                return  # the widget moved to the WebSocket
            if not connected:
                log.info("%s WebRTC did not connect within %.0f s", sid, self.config.connect_timeout_secs)
                self.ledger.give_back(sid)
                return
            await self._run_call(grant, connection)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("%s WebRTC session failed: %s", sid, clean(e))
        finally:
            self.pending.pop(sid, None)
            self.peers.pop(connection.pc_id, None)
            with contextlib.suppress(Exception):
                await connection.disconnect()

    @staticmethod
    async def _wait_connected(connection: Any, timeout: float) -> bool:
        """Until the peer is connected. Woken by the peer's state change (the greeting
        waits on this), re-checked every 50 ms: an ICE restart replaces ``connection.pc``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        changed = asyncio.Event()
        pc = connection.pc
        pc.on("connectionstatechange", changed.set)
        try:
            while connection.pc.connectionState != "connected":
                if connection.pc.connectionState == "closed" or loop.time() >= deadline:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), min(0.05, max(0.0, deadline - loop.time())))
                changed.clear()
            return True
        finally:
            pc.remove_listener("connectionstatechange", changed.set)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for connection in list(self.peers.values()):
            with contextlib.suppress(Exception):
                await connection.disconnect()
        self.peers.clear()
