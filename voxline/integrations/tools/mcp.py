"""MCP tools: ``tools: [{mcp: {command: ..., args: [...]}}]`` or ``{mcp: {url: ...}}``.

Through Pipecat's ``MCPClient`` (``pip install 'voxline[mcp]'``, mcp>=2.1): stdio for a
command, streamable HTTP for a URL. The server is connected when the call's pipeline
starts (the greeting plays meanwhile), its tools are listed (``await client.tools()``),
filtered by ``only:`` / ``except:``, and each runs through the guarded tool handler
(rate limits, cost cap, ``timeout_secs``, the sentence said on error) like the agent's
own tools. The connection is closed when the call ends. A server that cannot be reached
within ``connect_timeout_secs`` costs the call its tools, not the call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from types import SimpleNamespace
from typing import Any

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema

from voxline.errors import ToolError
from voxline.extras import require
from voxline.orchestration.settings import MCPTools
from voxline.spec import ToolSpec

log = logging.getLogger("voxline.tools")


def server_params(source: MCPTools, base_dir: Any = None) -> Any:
    """stdio runs ``command`` in the spec's folder; ``python`` is the interpreter voxline runs on."""
    require("mcp", "mcp")
    from mcp import StdioServerParameters
    from mcp.client.session_group import StreamableHttpParameters

    server = source.mcp
    if server.command is not None:
        command = sys.executable if server.command in ("python", "python3") else server.command
        env = {**os.environ, **server.env} if server.env else None
        return StdioServerParameters(command=command, args=list(server.args), env=env,
                                     cwd=str(base_dir) if base_dir is not None else None)
    return StreamableHttpParameters(url=server.url or "", headers=server.headers or None)


class MCPToolbox:
    """One MCP server's tools for one call."""

    def __init__(self, source: MCPTools, base_dir: Any = None) -> None:
        from pipecat.services.mcp_service import MCPClient

        self.source = source
        self.client = MCPClient(server_params(source, base_dir), tools_filter=source.only)
        self.schemas: list[FunctionSchema] = []
        self._handlers: dict[str, Any] = {}

    async def open(self) -> list[FunctionSchema]:
        tools = await asyncio.wait_for(self.client.tools(), self.source.mcp.connect_timeout_secs)
        for schema in tools.standard_tools:
            if not self.source.allows(schema.name):
                continue
            self._handlers[schema.name] = schema.handler
            self.schemas.append(FunctionSchema(name=schema.name, description=schema.description,
                                               properties=schema.properties, required=schema.required))
        return self.schemas

    def tool_spec(self, name: str) -> ToolSpec:
        """A ToolSpec for the guard (its limits and sentences come from the source)."""
        return ToolSpec.model_construct(name=name, handler=f"mcp:{name}", description="",
                                        timeout_secs=self.source.timeout_secs,
                                        say_on_error=self.source.say_on_error, parameters=None, returns=None,
                                        rate_limit=None, say_on_limit="Sorry, I can't do that again right now.",
                                        cost_usd=0.0, options={})

    def runner(self, name: str) -> Any:
        handler = self._handlers[name]

        async def run(arguments: dict[str, Any]) -> Any:
            out: list[Any] = []

            async def result_callback(result: Any, **_kwargs: Any) -> None:
                out.append(result)

            params = SimpleNamespace(function_name=name, tool_call_id=f"mcp-{name}", arguments=arguments,
                                     result_callback=result_callback)
            try:
                await asyncio.wait_for(handler(params), self.source.timeout_secs)
            except TimeoutError:
                raise ToolError(f"{name} timed out after {self.source.timeout_secs:g}s", retryable=True) from None
            text = out[0] if out else ""
            if isinstance(text, str) and text.startswith(("Error calling mcp tool", "Sorry, could not call")):
                raise ToolError(text[:200])
            try:
                return json.loads(text) if isinstance(text, str) else text
            except ValueError:
                return text

        return run

    async def close(self) -> None:
        try:
            await self.client.close()
        except Exception as e:  # a server that died already
            log.info("- closing MCP client: %s", type(e).__name__)


def wire_mcp(session: Any) -> None:
    """Connect every MCP server of the session's agents when its pipeline starts."""
    if getattr(session, "_mcp_wired", False):
        return
    session._mcp_wired = True
    from voxline.integrations.tools.runtime import guarded
    from voxline.orchestration.wiring import _each_agent

    agents = [(spec, llm, schema) for spec, llm, schema in _each_agent(session) if spec.mcp]
    if not agents:
        return
    boxes: list[MCPToolbox] = []

    async def opened(*_args: Any) -> None:
        from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema

        for spec, llm, schema in agents:
            for source in spec.mcp:
                box = MCPToolbox(source, spec.base_dir)
                boxes.append(box)
                try:
                    found = await box.open()
                except Exception as e:
                    log.warning("%s MCP server for agent %s unavailable: %s", session.call_id, spec.name,
                                type(e).__name__)
                    continue
                for fs in found:
                    llm.register_function(fs.name, guarded(box.tool_spec(fs.name), box.runner(fs.name), session.log),
                                          cancel_on_interruption=True)
                if schema is not None:
                    schema.extend(found)
                elif spec.tool_choice != "none":
                    tools = session.context.tools
                    current = list(tools.standard_tools) if isinstance(tools, ToolsSchema) else []
                    session.context.set_tools(ToolsSchema(standard_tools=[*current, *found]))
        team = getattr(session, "team", None)
        if team is not None:
            team._advertise(team.current)
        warm = getattr(session.services.llm, "warm_up", None)
        if warm is not None and any(b.schemas for b in boxes):  # the tools changed the prompt: evaluate it
            try:
                await warm(session.context)
            except Exception as e:
                log.info("%s warm-up after MCP tools failed: %s", session.call_id, type(e).__name__)

    async def closed(*_args: Any) -> None:
        await asyncio.gather(*(b.close() for b in boxes), return_exceptions=True)

    session.mcp_ready = None

    async def start(*args: Any) -> None:
        task = asyncio.ensure_future(opened())
        session.mcp_ready = task
        session._spawn(task)  # held by the session: cancelled when the call ends

    session.worker.add_event_handler("on_pipeline_started", start)
    session.worker.add_event_handler("on_pipeline_finished", closed)
