"""A web session as the call host sees it: a :class:`~voxline.pipelines.call_control.CallLine`.

The RTVI processor (captions and state for the widget) goes to the pipeline worker,
which places it; the processors it adds to the call's pipeline: the heard-text
observer before the output, and after it the
played clock and the heard-text gate (see :mod:`.played`). ``hang_up`` needs nothing
on a carrier: ending the pipeline closes the peer connection or the socket, and the
widget shows that the agent hung up. There is no one to transfer a browser to; when
``builtin:transfer_to_human`` has delivered the visitor's request to a person,
``notify_handoff`` tells the widget (an RTVI server message, see :func:`.rtvi.handoff_message`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from pipecat.processors.frame_processor import FrameProcessor
from pipecat.processors.frameworks.rtvi.frames import RTVIServerMessageFrame

from voxline.errors import ProviderError
from voxline.transports.twilio.heard import HeardLine, HeardTextTracker
from voxline.transports.twilio.marks import MarkLedger

from .played import PlayedClock
from .rtvi import WidgetRTVI, handoff_message

log = logging.getLogger("voxline.web")


@dataclass
class WebCall:
    call_id: str
    ledger: MarkLedger
    heard: HeardTextTracker
    rtvi: WidgetRTVI
    clock: PlayedClock
    stats_source: Callable[[], dict[str, int]] = dict
    counters: dict[str, int] = field(default_factory=dict)

    @classmethod
    def create(cls, call_id: str, *, interrupted_marker: str | None = " [interrupted]") -> WebCall:
        ledger = MarkLedger(prefix="web")
        rtvi = WidgetRTVI(name=f"RTVI#{call_id}")

        async def on_heard(line: HeardLine) -> None:
            # The widget replaces the agent's caption with what was heard, marked if cut.
            await rtvi.send_server_message({"voxline": "heard", "text": line.text,
                                            "interrupted": line.interrupted})

        heard = HeardTextTracker(ledger, call_id=call_id, interrupted_marker=interrupted_marker,
                                 on_heard=on_heard)
        return cls(call_id=call_id, ledger=ledger, heard=heard, rtvi=rtvi,
                   clock=PlayedClock(ledger, name=f"PlayedClock#{call_id}"))

    # -- pipeline places ---------------------------------------------------------
    @property
    def before_output(self) -> list[FrameProcessor]:
        return [self.heard.observer]

    @property
    def after_output(self) -> list[FrameProcessor]:
        return [self.clock, self.heard.gate]

    # -- CallLine ----------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self.ledger.epoch

    @property
    def heard_count(self) -> int:
        return self.heard.heard_count

    async def wait_heard(self, text: str, *, since: int, timeout: float) -> bool:
        return await self.heard.wait_heard(text, since=since, timeout=timeout)

    async def hang_up(self) -> None:
        log.info("%s agent hung up", self.call_id)

    async def transfer(self, target: str) -> None:
        raise ProviderError("a web visitor cannot be transferred to a phone line", retryable=False)

    async def notify_handoff(self, status: str, *, target: str, message: str) -> None:
        """The widget is told that the visitor's handoff request reached ``target``.

        Pipecat's RTVI observer turns the frame into a ``server-message`` for the page.
        """
        data = handoff_message(status, target=target, message=message)
        await self.rtvi.push_frame(RTVIServerMessageFrame(data=data))
        self.counters["handoffs"] = self.counters.get("handoffs", 0) + 1
        log.info("%s widget told: handoff %s (target %s)", self.call_id, data["status"], data["target"])

    def stats(self) -> dict[str, int]:
        return {**self.stats_source(), **self.counters,
                "audio_out_ms": int(self.clock.played_secs * 1000),
                "barge_ins": self.ledger.epoch}
