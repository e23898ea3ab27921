"""A tool's settings and secrets, from the platform's store to the code that runs it.

A tenant configures a tool of an agent through the admin API
(``PUT /api/v1/tenants/T/agents/A/tools/KEY``): plain ``settings``, write-only
``secrets`` (kept sealed at rest), and functions switched off. ``KEY`` names one tool
(its spec ``name``) or a group of them: the module its handler lives in (``crm`` for
``crm.py:lookup`` or ``acme.crm:lookup``). A tool's config is its group's with its own
on top. The server opens the secrets when it loads the agent and hands them to:

- a Python tool whose function takes a ``tool_config`` parameter (not shown to the LLM);
- an ``http:`` tool: secret ``signing_secret`` signs its requests (instead of
  ``http.secret_env``), every other secret and ``settings.headers`` are request headers
  (``Authorization``, ``X-Api-Key``...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from voxline.spec import ToolSpec

PARAMETER = "tool_config"  # the parameter name that asks for it


@dataclass(frozen=True)
class ToolConfig:
    settings: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # a secret never reaches a log line through a repr
        return f"ToolConfig(settings={dict(self.settings)!r}, secrets={sorted(self.secrets)!r})"

    def merged(self, over: ToolConfig) -> ToolConfig:
        return ToolConfig({**self.settings, **over.settings}, {**self.secrets, **over.secrets})


def group_of(tool: ToolSpec) -> str | None:
    """The module a tool's handler lives in; None for webhooks and built-ins."""
    if tool.handler.startswith(("http:", "builtin:")):
        return None
    target = tool.handler.rpartition(":")[0]
    name = target.rsplit("/", 1)[-1].removesuffix(".py")
    return name.rsplit(".", 1)[-1] or None


def config_for(tool: ToolSpec, configs: Mapping[str, ToolConfig]) -> ToolConfig | None:
    """The tool's group config with its own on top (None: nothing configured)."""
    group = group_of(tool)
    found = [configs[k] for k in (group, tool.name) if k is not None and k in configs]
    if not found:
        return None
    config = found[0]
    for more in found[1:]:
        config = config.merged(more)
    return config
