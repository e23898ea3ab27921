"""Phone calls over Twilio Media Streams: webhooks, stream transport, marks, tools.

Needs the ``voxline[twilio]`` extra (fastapi, uvicorn, pipecat websocket transport).
"""

from voxline.extras import require

# Fail with a message naming the extra instead of a bare ImportError deep inside.
require("fastapi", "twilio")
require("pipecat.transports.websocket.fastapi", "twilio")

from .config import TwilioConfig, redact_number
from .heard import HeardLine, HeardTextTracker
from .marks import MarkLedger
from .messages import CallInfo
from .records import CallRecord, CallRecords, InMemoryCallRecords, TranscriptLine
from .rest import MachineDetection, RetryOptions, TwilioRestClient
from .router import place_outbound_call, twilio_router
from .serializer import VoxlineTwilioSerializer
from .session import TwilioCall
from .signature import compute_signature, is_valid_signature
from .transport import TwilioStreamTransport, twilio_transport_params
from .twiml import dial_twiml, say_and_hangup, stream_twiml

__all__ = [
    "CallInfo", "CallRecord", "CallRecords", "HeardLine", "HeardTextTracker",
    "InMemoryCallRecords", "MachineDetection", "MarkLedger", "RetryOptions", "TranscriptLine",
    "TwilioCall", "TwilioConfig", "TwilioRestClient", "TwilioStreamTransport",
    "VoxlineTwilioSerializer", "compute_signature", "dial_twiml", "is_valid_signature",
    "place_outbound_call", "redact_number", "say_and_hangup", "stream_twiml",
    "twilio_router", "twilio_transport_params",
]
