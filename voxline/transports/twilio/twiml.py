"""TwiML documents we answer Twilio with. Built with ElementTree so values are escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping


def _doc(response: ET.Element) -> str:
    return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(response, encoding="unicode")


def stream_twiml(stream_url: str, parameters: Mapping[str, str], *, status_callback: str | None = None) -> str:
    """<Connect><Stream>: a bidirectional stream; Parameters arrive in start.customParameters."""
    response = ET.Element("Response")
    connect = ET.SubElement(response, "Connect")
    stream = ET.SubElement(connect, "Stream", {"url": stream_url})
    if status_callback:
        stream.set("statusCallback", status_callback)
    for name, value in parameters.items():
        ET.SubElement(stream, "Parameter", {"name": name, "value": value})
    return _doc(response)


def say_and_hangup(message: str, *, voice: str | None = None) -> str:
    """A polite spoken message and a hang-up (used for unknown numbers)."""
    response = ET.Element("Response")
    say = ET.SubElement(response, "Say", {"voice": voice} if voice else {})
    say.text = message
    ET.SubElement(response, "Hangup")
    return _doc(response)


def dial_twiml(target: str, *, caller_id: str | None = None, timeout_secs: int = 30) -> str:
    """<Dial> to a phone number or a SIP address (sip:agent@pbx.example.com)."""
    response = ET.Element("Response")
    attrs = {"timeout": str(timeout_secs)}
    if caller_id:
        attrs["callerId"] = caller_id
    dial = ET.SubElement(response, "Dial", attrs)
    if target.lower().startswith("sip:"):
        ET.SubElement(dial, "Sip").text = target
    else:
        ET.SubElement(dial, "Number").text = target
    return _doc(response)


def hangup_twiml() -> str:
    response = ET.Element("Response")
    ET.SubElement(response, "Hangup")
    return _doc(response)
