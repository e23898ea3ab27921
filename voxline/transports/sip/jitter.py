"""A small reorder buffer for inbound RTP: packets out in sequence-number order.

Phones and trunks send 20 ms packets; on a real network a few arrive out of order or
not at all. We hold up to ``depth`` packets waiting for a missing one, then give up
on it (it becomes :data:`LOST`, 20 ms of silence to the pipeline). Late packets and
duplicates are dropped. Sequence numbers wrap at 2**16.
"""

from __future__ import annotations

from dataclasses import dataclass

LOST = None  # an emitted slot with no audio: the packet never came
NON_MEDIA = b""  # a sequence number used by DTMF or comfort noise: consumed, nothing to play
_HALF = 0x8000
_RESET_JUMP = 1000  # a jump this large is a new stream (or a restart), not loss


@dataclass
class JitterStats:
    reordered: int = 0
    late: int = 0  # arrived after we gave up on it, or duplicates
    lost: int = 0
    resets: int = 0


class ReorderBuffer:
    def __init__(self, depth: int = 3) -> None:
        self.depth = max(0, depth)
        self._next: int | None = None
        self._held: dict[int, bytes] = {}
        self.stats = JitterStats()

    def reset(self) -> None:
        self._next = None
        self._held.clear()

    def push(self, seq: int, payload: bytes) -> list[bytes | None]:
        """Add packet ``seq``; returns what can be played now, in order."""
        seq &= 0xFFFF
        if self._next is None:
            self._next = seq
        ahead = (seq - self._next) & 0xFFFF
        if ahead >= _HALF:  # behind what we already played
            if (self._next - seq) & 0xFFFF > _RESET_JUMP:
                return self._restart(seq, payload)
            self.stats.late += 1
            return []
        if ahead > _RESET_JUMP:
            return self._restart(seq, payload)
        if seq in self._held:
            self.stats.late += 1
            return []
        if ahead > 0:
            self.stats.reordered += 1 if ahead <= self.depth else 0
        self._held[seq] = payload
        return self._release(force=False)

    def _restart(self, seq: int, payload: bytes) -> list[bytes | None]:
        self.stats.resets += 1
        out = self.flush()
        self._next = seq
        self._held[seq] = payload
        return out + self._release(force=False)

    def flush(self) -> list[bytes | None]:
        """Everything held, in order, gaps skipped (the stream paused)."""
        return self._release(force=True)

    def _release(self, *, force: bool) -> list[bytes | None]:
        out: list[bytes | None] = []
        assert self._next is not None or not self._held
        while self._held:
            assert self._next is not None
            payload = self._held.pop(self._next, None)
            if payload is not None:
                if payload:
                    out.append(payload)
                self._next = (self._next + 1) & 0xFFFF
                continue
            if not force and len(self._held) <= self.depth:
                break
            # Give up on the missing packet(s): jump to the oldest one we hold.
            oldest = min(self._held, key=lambda s: (s - self._next) & 0xFFFF)  # type: ignore[operator]
            gap = (oldest - self._next) & 0xFFFF
            self.stats.lost += gap
            if not force:
                out.extend([LOST] * min(gap, self.depth + 1))
            self._next = oldest
        return out
