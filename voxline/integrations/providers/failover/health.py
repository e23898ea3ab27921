"""Provider health shared by every call of a worker.

A provider that fails in one call is down for the calls that start after it, too: they
begin on the next provider of their chain instead of each finding out with a caller
waiting. One probe per provider and worker runs in the background (not one per call),
and when it passes every chain that holds the provider takes it back between turns.

A provider is known by what a request goes to: kind, provider, model, base URL and
voice. Health lives with the event loop (a worker has one; tests start a loop each).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from voxline.errors import translate

log = logging.getLogger("voxline.failover")

Key = tuple[str, str, str | None, str | None, str | None]
Probe = Callable[[], Awaitable[None]]  # raises while the provider is not healthy


def key_of(kind: str, block: Any) -> Key:
    return (kind, block.provider, block.model, block.base_url, block.voice)


@dataclass
class _State:
    healthy: bool = True
    failures: int = 0
    probe: asyncio.Task[None] | None = None
    # Chains holding the provider: told when it is healthy again. Weak: a call that
    # ended must not be kept alive by the board.
    watchers: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet)


class HealthBoard:
    """Health of every provider this worker's calls use."""

    def __init__(self) -> None:
        self._states: dict[Key, _State] = {}

    def _state(self, key: Key) -> _State:
        return self._states.setdefault(key, _State())

    def healthy(self, key: Key) -> bool:
        state = self._states.get(key)
        return state is None or state.healthy

    def failures(self, key: Key) -> int:
        state = self._states.get(key)
        return 0 if state is None else state.failures

    def watch(self, key: Key, chain: Any) -> None:
        """``chain.provider_healed(key)`` is called when ``key`` passes its probe."""
        self._state(key).watchers.add(chain)

    def failed(self, key: Key, probe: Probe, retry: Any) -> None:
        """A call saw ``key`` fail: mark it down and probe it until it is back."""
        state = self._state(key)
        state.failures += 1
        state.healthy = False
        if state.probe is None or state.probe.done():
            state.probe = asyncio.get_running_loop().create_task(self._probe(key, probe, retry))

    async def _probe(self, key: Key, probe: Probe, retry: Any) -> None:
        interval = retry.probe_interval_secs
        timeout = retry.attempt_timeout_secs + retry.stall_timeout_secs + 5.0
        name = f"{key[1]} ({key[0]})"
        for n in range(retry.max_probes):
            await asyncio.sleep(interval)
            try:
                await asyncio.wait_for(probe(), timeout)
            except Exception as e:  # noqa: BLE001 - any failure means: not yet
                log.info("%s probe %d failed: %s", name, n + 1, translate(e).reason)
                interval = min(interval * 2, retry.probe_max_interval_secs)
                continue
            log.info("%s is healthy again", name)
            self._healed(key)
            return
        # Given up for now: the next call that reaches the provider tries it (a new
        # call, not a caller waiting in one, pays for finding out).
        log.warning("%s stays out after %d probes; the next new call tries it", name, retry.max_probes)
        self._healed(key, confirmed=False)

    def _healed(self, key: Key, *, confirmed: bool = True) -> None:
        state = self._state(key)
        state.healthy = True
        for chain in list(state.watchers) if confirmed else ():
            chain.provider_healed(key)

    async def close(self) -> None:
        for state in self._states.values():
            if state.probe is not None:
                state.probe.cancel()


_boards: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, HealthBoard] = weakref.WeakKeyDictionary()


def board() -> HealthBoard:
    """This worker's board (one per event loop)."""
    loop = asyncio.get_running_loop()
    found = _boards.get(loop)
    if found is None:
        found = _boards[loop] = HealthBoard()
    return found
