"""Phone calls over Twilio Media Streams: webhooks, stream transport, marks, tools.

Needs the ``voxline[twilio]`` extra (fastapi, uvicorn, pipecat websocket transport).
The names below are imported lazily: importing the package costs nothing until used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "TwilioConfig": "config", "redact_number": "config",
    "HeardLine": "heard", "HeardTextTracker": "heard",
    "MarkLedger": "marks",
    "CallInfo": "messages",
    "MachineDetection": "rest", "RetryOptions": "rest", "TwilioRestClient": "rest",
    "place_outbound_call": "router", "twilio_router": "router",
    "VoxlineTwilioSerializer": "serializer",
    "TwilioCall": "session",
    "compute_signature": "signature", "is_valid_signature": "signature",
    "TwilioStreamTransport": "transport", "twilio_transport_params": "transport",
    "dial_twiml": "twiml", "say_and_hangup": "twiml", "stream_twiml": "twiml",
}

_checked = False


def __getattr__(name: str) -> Any:
    global _checked
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if not _checked:
        from voxline.extras import require

        # Fail with a message naming the extra instead of a bare ImportError deep inside.
        require("fastapi", "twilio")
        require("pipecat.transports.websocket.fastapi", "twilio")
        _checked = True
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .config import TwilioConfig, redact_number
    from .heard import HeardLine, HeardTextTracker
    from .marks import MarkLedger
    from .messages import CallInfo
    from .rest import MachineDetection, RetryOptions, TwilioRestClient
    from .router import place_outbound_call, twilio_router
    from .serializer import VoxlineTwilioSerializer
    from .session import TwilioCall
    from .signature import compute_signature, is_valid_signature
    from .transport import TwilioStreamTransport, twilio_transport_params
    from .twiml import dial_twiml, say_and_hangup, stream_twiml

__all__ = [
    "CallInfo", "HeardLine", "HeardTextTracker",
    "MachineDetection", "MarkLedger", "RetryOptions",
    "TwilioCall", "TwilioConfig", "TwilioRestClient", "TwilioStreamTransport",
    "VoxlineTwilioSerializer", "compute_signature", "dial_twiml", "is_valid_signature",
    "place_outbound_call", "redact_number", "say_and_hangup", "stream_twiml", "twilio_router",
    "twilio_transport_params",
]
