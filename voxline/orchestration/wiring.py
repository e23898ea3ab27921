"""Where orchestration meets a call: its team of agents and its orchestration built-ins.

The built-ins (``builtin:search_knowledge``, ``builtin:transfer_to_human``,
``builtin:call_task``, ``builtin:report_outcome``) are registered on the LLM of each
agent that lists them, and advertised with its tools. A session wires them with what
it knows (a simulated line, the default store); the call host wires them again for its
calls with the line, the store and the dialer it has (registering again replaces).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema

from voxline.orchestration.handoff import Team
from voxline.spec import AgentSpec

log = logging.getLogger("voxline.orchestration")


def team_for(spec: AgentSpec, agents: Mapping[str, AgentSpec], services: Any,
             make: Callable[[AgentSpec], Any]) -> Team | None:
    """The team of a call whose agent has handoffs or languages (its own services first), else None."""
    if not spec.handoffs and not spec.languages:
        return None
    return Team.build(spec, agents, lambda s: services if s is spec else make(s))


def _each_agent(session: Any) -> list[tuple[AgentSpec, Any, list[FunctionSchema] | None]]:
    """(spec, llm, schema list of the team member or None) of every agent of the session."""
    team = getattr(session, "team", None)
    if team is None:
        return [(session.spec, session.services.llm, None)]
    return [(m.spec, m.llm, m.schema) for m in team.members.values()]


def wire_builtins(session: Any, *, host: Any = None, line: Any = None, channel: str = "sim") -> None:
    """Register the orchestration built-ins each agent of ``session`` lists."""
    from voxline.integrations.tools.mcp import wire_mcp
    from voxline.orchestration import builtins

    if any(spec.mcp for spec, _, _ in _each_agent(session)):
        wire_mcp(session)  # once per session: connected when the pipeline starts

    advertised_now: list[FunctionSchema] = []
    for spec, llm, schema in _each_agent(session):
        wired = builtins.wire(spec, llm, session, host=host, line=line, channel=channel)
        if schema is not None:
            names = {s.name for s in schema}
            schema.extend(s for s in wired if s.name not in names)
        elif wired:
            advertised_now = wired
    team = getattr(session, "team", None)
    if team is not None:
        team._advertise(team.current)
    elif advertised_now and session.spec.tool_choice != "none":
        tools = session.context.tools
        schemas = list(tools.standard_tools) if isinstance(tools, ToolsSchema) else []
        names = {s.name for s in schemas}
        session.context.set_tools(ToolsSchema(standard_tools=[*schemas, *(s for s in advertised_now
                                                                            if s.name not in names)]))


def wire_orchestration(host: Any, spec: AgentSpec, live: Any) -> None:
    """The call host's versions of the built-ins: the call's line, store and dialer."""
    live.session.control, live.session.incoming = live.control, live.incoming
    from voxline.orchestration.tasks import adopt_task_call

    adopt_task_call(live.session, live.incoming.call_id)  # a task call this process placed
    wire_builtins(live.session, host=host, line=live.incoming.line, channel=live.incoming.channel)
