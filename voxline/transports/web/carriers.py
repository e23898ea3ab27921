"""The two Pipecat transports a web session runs on.

WebRTC: ``SmallWebRTCTransport`` over a connected aiortc peer (see :mod:`.webrtc`).

The WebSocket fallback: Pipecat's FastAPI WebSocket transport with its protobuf
serializer, used by the widget when WebRTC cannot connect (UDP blocked by a firewall, no TURN).
The browser records 16 kHz PCM and plays what it gets at 24 kHz (the rates of
``@pipecat-ai/websocket-transport``'s recorder and player), so the output is
resampled to 24 kHz here. The socket's ``Origin`` must be the one the token was
issued to; browsers send it on every WebSocket handshake.
"""

from __future__ import annotations

from typing import Any

from fastapi import WebSocket

PLAYER_RATE = 24000  # the widget's WebSocket player rate


def websocket_transport(websocket: WebSocket) -> Any:
    from pipecat.serializers.protobuf import ProtobufFrameSerializer
    from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport

    params = FastAPIWebsocketParams(
        audio_in_enabled=True,
        audio_out_enabled=True,
        audio_out_sample_rate=PLAYER_RATE,
        add_wav_header=False,
        serializer=ProtobufFrameSerializer(),
        allowed_origins=[],  # checked against the session token before we get here
        session_timeout=None,  # the agent's limits end the call
    )
    return FastAPIWebsocketTransport(websocket, params)


def webrtc_transport(connection: Any) -> Any:
    """The SmallWebRTC transport over a connected peer; 20 ms output chunks."""
    from pipecat.transports.base_transport import TransportParams
    from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport

    return SmallWebRTCTransport(connection, TransportParams(audio_in_enabled=True, audio_out_enabled=True,
                                                            audio_out_10ms_chunks=2))
