"""A tool that needs its tenant's settings and secret (tests/platform/test_stored_calls.py)."""

from __future__ import annotations

from typing import Any

SEEN: list[Any] = []  # the configs the tool was called with


def lookup(phone: str, tool_config: Any = None) -> dict:
    """Look a caller up in the CRM."""
    SEEN.append(tool_config)
    token = tool_config.secrets.get("token") if tool_config else None
    return {"phone": phone, "crm": tool_config.settings.get("base_url") if tool_config else None,
            "authorized": bool(token)}
