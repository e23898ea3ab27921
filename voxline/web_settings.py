"""Per-agent web widget settings (the ``web:`` block of an agent spec).

Pydantic only, so that importing the spec never pulls in the web transport::

    web:
      allowed_origins: ["https://www.example.com", "https://example.com"]
      sessions_per_minute: 6        # session tokens one visitor IP may take per minute
      title: "Ask the restaurant"   # the widget's panel heading and demo page title

A page may start a session for this agent only from an origin listed here or in the
deployment's ``VOXLINE_ALLOWED_ORIGINS`` (the server's own ``/web/NAME`` demo page
is always allowed). ``enabled: false`` keeps the agent off the web entirely.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator


def normalize_origin(value: str) -> str:
    """``https://Example.com:443/`` -> ``https://example.com``; raises ValueError if not an origin."""
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an origin (scheme://host[:port]): {value!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"an origin has no path, query or credentials: {value!r}")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


class WebSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    allowed_origins: tuple[str, ...] = ()
    sessions_per_minute: int = Field(6, ge=1, le=600)
    title: str | None = Field(None, min_length=1, max_length=80)

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            return value
        return tuple(normalize_origin(str(v)) for v in value)


__all__ = ["WebSettings", "normalize_origin"]
