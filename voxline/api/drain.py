"""Graceful drain: on SIGTERM a worker stops taking calls, finishes its calls, then exits.

uvicorn's own SIGTERM handling closes every open websocket at once (code 1012): a
phone call would be cut mid-sentence. :class:`Drainer` takes SIGTERM first:

1. ``host.draining = True``: ``/readyz`` answers 503 (the load balancer or Kubernetes
   sends new calls elsewhere), the Twilio webhook answers with the busy message,
   ``POST /calls`` with 503, a stream that still arrives is refused;
2. the calls in progress go on until they end, up to ``deadline_secs``
   (``$VOXLINE_DRAIN_SECS``, default 25 s: keep it under the pod's
   terminationGracePeriodSeconds);
3. calls still running then are ended with a goodbye (reason ``server_shutdown``);
4. summaries, facts and records are written (``host.settle``), then uvicorn's own
   handler runs and the process exits as it always does.

A second SIGTERM (or SIGINT) during the drain exits at once, as uvicorn does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from typing import Any

log = logging.getLogger("voxline.drain")

DRAIN_ENV = "VOXLINE_DRAIN_SECS"
GOODBYE = "We have to end this call now. Please call again. Goodbye!"


def drain_secs_from_env(default: float = 25.0) -> float:
    value = os.environ.get(DRAIN_ENV, "").strip()
    return float(value) if value else default


class Drainer:
    def __init__(self, host: Any, *, deadline_secs: float | None = None, goodbye: str = GOODBYE,
                 before_exit: Any = None) -> None:
        self.host = host
        self.deadline_secs = drain_secs_from_env() if deadline_secs is None else deadline_secs
        self.goodbye = goodbye
        self.before_exit = before_exit  # async () -> None: flush what must not be lost
        self._previous: Any = None
        self._task: asyncio.Task[Any] | None = None
        self._installed = False
        self.done = asyncio.Event()

    def install(self) -> bool:
        """Take SIGTERM (main thread of a running loop only: uvicorn's workers are)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        loop = asyncio.get_running_loop()
        self._previous = signal.getsignal(signal.SIGTERM)
        try:
            loop.add_signal_handler(signal.SIGTERM, self.begin)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not on this platform
            return False
        self._installed = True
        return True

    def uninstall(self) -> None:
        if self._installed:
            self._installed = False
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
            if self._previous is not None:
                signal.signal(signal.SIGTERM, self._previous)

    def begin(self) -> None:
        if self._task is not None:  # the second SIGTERM: no more waiting
            log.warning("- second SIGTERM: exiting now with %d call(s)", len(self.host.calls))
            self._exit()
            return
        self.host.draining = True
        log.info("- draining: %d call(s) in progress, up to %.0f s", len(self.host.calls), self.deadline_secs)
        self._task = asyncio.get_running_loop().create_task(self.drain())

    async def drain(self) -> None:
        await self._calls_ended(self.deadline_secs)
        if self.host.calls:
            log.warning("- drain deadline: ending %d call(s)", len(self.host.calls))
            for live in list(self.host.calls.values()):
                with contextlib.suppress(Exception):
                    await live.session.end("server_shutdown", speak=self.goodbye)
            await self._calls_ended(10.0)
        with contextlib.suppress(Exception):
            await self.host.settle()
        if self.before_exit is not None:
            with contextlib.suppress(Exception):
                await self.before_exit()
        log.info("- drained")
        self.done.set()
        self._exit()

    async def _calls_ended(self, secs: float) -> None:
        """Until the host holds no call, at most ``secs`` (bounded polling: calls end in the host)."""
        for _ in range(max(1, int(secs / 0.1))):
            if not self.host.calls:
                return
            await asyncio.sleep(0.1)

    def _exit(self) -> None:
        previous = self._previous
        self.uninstall()
        if callable(previous):
            previous(signal.SIGTERM, None)  # uvicorn's handle_exit: shut down as usual
        else:
            signal.raise_signal(signal.SIGTERM)
