"""RTVI for the widget: captions and state out, almost nothing in.

The call session runs its pipeline without Pipecat's built-in RTVI (phone calls
have no use for it), so the web transport adds its own processor to the pipeline;
at setup it registers its observer with the pipeline worker. What a public page
gets is limited on purpose: no metrics, no LLM text (it can carry tool calls), no
user context, no function-call events. From the page only ``client-ready`` and
``disconnect-bot`` are taken -- typed text, context edits and client messages
would let a page script steer the agent past what a visitor can say.
"""

from __future__ import annotations

import logging
from typing import Any

import pipecat.processors.frameworks.rtvi.models as RTVI
from pipecat.processors.frame_processor import FrameProcessorSetup
from pipecat.processors.frameworks.rtvi import RTVIObserverParams, RTVIProcessor
from pipecat.processors.frameworks.rtvi.observer import RTVIFunctionCallReportLevel

log = logging.getLogger("voxline.web")

ACCEPTED = frozenset({"client-ready", "disconnect-bot"})


def public_observer_params() -> RTVIObserverParams:
    return RTVIObserverParams(
        bot_llm_enabled=False,
        user_llm_enabled=False,
        metrics_enabled=False,
        system_logs_enabled=False,
        function_call_report_level={"*": RTVIFunctionCallReportLevel.DISABLED},
    )


class WidgetRTVI(RTVIProcessor):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client_ready = False

        @self.event_handler("on_client_ready")
        async def _ready(rtvi: RTVIProcessor) -> None:
            self.client_ready = True
            await rtvi.set_bot_ready()

    async def setup(self, setup: FrameProcessorSetup) -> None:
        await super().setup(setup)
        worker = setup.pipeline_worker
        if worker is not None:
            worker.add_observer(self.create_rtvi_observer(params=public_observer_params()))

    async def _handle_message(self, message: RTVI.Message, user_id: str | None = None) -> None:
        if message.type not in ACCEPTED:
            await self._send_error_response(message.id, f"'{message.type[:40]}' is not accepted here")
            return
        await super()._handle_message(message, user_id)
