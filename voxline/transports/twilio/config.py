"""Configuration of the Twilio phone transport: one frozen object built once per server."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from voxline.errors import MissingSecretError
from voxline.logsafe import redact_number  # noqa: F401  (re-exported)
from voxline.routing import normalize_number


@dataclass(frozen=True)
class TwilioConfig:
    """Everything the Twilio router, REST client and transport need.

    ``public_base_url`` is the scheme+host Twilio uses to reach us (for example
    ``https://voice.example.com``). Behind a proxy it is the only reliable way to
    rebuild the URL Twilio signed; without it we fall back to X-Forwarded-* headers.
    """

    account_sid: str
    auth_token: str
    routes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    public_base_url: str | None = None
    # X-Forwarded-Proto/Host are believed only when a trusted proxy sets them.
    trust_forwarded_headers: bool = False
    api_base_url: str = "https://api.twilio.com"
    unknown_number_message: str = (
        "Sorry, this number is not connected to an assistant. Goodbye."
    )
    recording_dir: Path | None = None
    # Bounds that keep one misbehaving stream from holding server resources.
    start_timeout_secs: float = 10.0
    max_messages_before_start: int = 50
    # Twilio's largest stream message (80 ms of μ-law, base64) is ~1 KB; 64 KiB is ample.
    max_message_bytes: int = 65536

    @classmethod
    def from_env(cls, routes: Mapping[str, str], **kwargs: object) -> TwilioConfig:
        """Read secrets from the environment; a missing one fails fast and names the variable."""
        values = {}
        for var in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
            value = os.environ.get(var)
            if not value:
                raise MissingSecretError(f"{var} is not set (needed for Twilio phone calls)")
            values[var] = value
        public = os.environ.get("VOXLINE_PUBLIC_URL")
        if public and "public_base_url" not in kwargs:
            kwargs["public_base_url"] = public
        if os.environ.get("VOXLINE_TRUST_PROXY", "") in ("1", "true", "yes"):
            kwargs.setdefault("trust_forwarded_headers", True)
        api = os.environ.get("TWILIO_API_BASE_URL")
        if api and "api_base_url" not in kwargs:
            kwargs["api_base_url"] = api
        return cls(
            account_sid=values["TWILIO_ACCOUNT_SID"],
            auth_token=values["TWILIO_AUTH_TOKEN"],
            routes=MappingProxyType(dict(routes)),
            **kwargs,  # type: ignore[arg-type]
        )

    def agent_for(self, dialed: str) -> str | None:
        """Agent name for a dialed number, tolerant of spaces/dashes in the table."""
        wanted = normalize_number(dialed)
        for number, agent in self.routes.items():
            if normalize_number(number) == wanted:
                return agent
        return None
