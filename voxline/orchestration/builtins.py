"""The orchestration built-ins, registered on the LLM of each agent that lists them.

- ``builtin:search_knowledge``: the agent's knowledge base (voxline.knowledge.search).
- ``builtin:transfer_to_human``: a person from ``humans.targets`` (orchestration/human.py).
- ``builtin:call_task``: an outbound call with a task agent, its outcome returned
  (orchestration/tasks.py).
- ``builtin:report_outcome``: what a task agent reports back before it hangs up.

Each runs through the guarded tool handler (rate limits, cost cap, ``returns``, timeouts
as the tool's ``timeout_secs``), like the agent's own tools.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema

from voxline.errors import ToolError
from voxline.integrations.tools.runtime import guarded
from voxline.spec import AgentSpec, ToolSpec

log = logging.getLogger("voxline.orchestration")

NAMES = ("search_knowledge", "transfer_to_human", "call_task", "report_outcome")

REPORT_SCHEMA = FunctionSchema(
    name="report_outcome",
    description="Report how the task went, once the other side has said so, before saying goodbye.",
    properties={
        "status": {"type": "string", "enum": ["done", "failed"]},
        "confirmation": {"type": "string", "description": "A confirmation number or reference, if any."},
        "details": {"type": "string", "description": "What was agreed, or why it could not be done."},
    },
    required=["status"],
)


def _timed(tool: ToolSpec, run: Any) -> Any:
    async def call(arguments: dict[str, Any]) -> Any:
        try:
            return await asyncio.wait_for(run(arguments), tool.timeout_secs)
        except TimeoutError:
            raise ToolError(f"{tool.name} timed out after {tool.timeout_secs:g}s", retryable=True) from None

    return call


def wire(spec: AgentSpec, llm: Any, session: Any, *, host: Any = None, line: Any = None,
         channel: str = "sim") -> list[FunctionSchema]:
    """Register ``spec``'s orchestration built-ins on ``llm``; the schemas to advertise."""
    schemas: list[FunctionSchema] = []
    for tool in spec.tools:
        kind = tool.handler.removeprefix("builtin:") if tool.handler.startswith("builtin:") else None
        if kind not in NAMES:
            continue
        made = _make(kind, tool, spec, session, host=host, line=line, channel=channel)
        if made is None:
            continue
        run, schema, timed = made
        llm.register_function(schema.name, guarded(tool, _timed(tool, run) if timed else run, session.log),
                              cancel_on_interruption=True)
        schemas.append(schema)
    return schemas


def _make(kind: str, tool: ToolSpec, spec: AgentSpec, session: Any, *, host: Any, line: Any,
          channel: str) -> tuple[Any, FunctionSchema, bool] | None:
    if kind == "search_knowledge":
        if spec.knowledge is None:
            log.warning("- agent %s lists builtin:search_knowledge but has no knowledge: block", spec.name)
            return None
        return _knowledge(spec, session, host), _named(SEARCH_SCHEMA(), tool), False
    if kind == "transfer_to_human":
        if spec.humans is None:
            log.warning("- agent %s lists builtin:transfer_to_human but has no humans: block", spec.name)
            return None
        from voxline.orchestration.human import HumanHandoff, human_schema

        handoff = HumanHandoff(spec, session, line=line, channel=channel, host=host)
        return handoff.run, _named(human_schema(spec.humans), tool), False
    if kind == "call_task":
        if spec.tasks.calls is None:
            log.warning("- agent %s lists builtin:call_task but has no tasks.calls block", spec.name)
            return None
        from voxline.orchestration.tasks import TaskCaller, task_schema

        caller = TaskCaller(spec, session, host=host)
        return caller.run, _named(task_schema(spec.tasks.calls), tool), False
    if kind == "report_outcome":
        from voxline.orchestration.tasks import report_outcome

        async def report(arguments: dict[str, Any]) -> Any:
            return await report_outcome(session, arguments)

        return report, _named(REPORT_SCHEMA, tool), False
    return None


def SEARCH_SCHEMA() -> FunctionSchema:  # noqa: N802 - the schema lives with the search
    from voxline.knowledge.search import SCHEMA

    return SCHEMA


def _named(schema: FunctionSchema, tool: ToolSpec) -> FunctionSchema:
    """The built-in's schema under the tool's own name and description, when given."""
    return FunctionSchema(name=tool.name, description=tool.description or schema.description,
                          properties=schema.properties, required=schema.required)


def _knowledge(spec: AgentSpec, session: Any, host: Any) -> Any:
    from voxline.knowledge.search import KnowledgeSearch

    searcher: list[KnowledgeSearch] = []

    async def run(arguments: dict[str, Any]) -> Any:
        if not searcher:
            memory = getattr(host, "memory", None)
            if memory is not None:
                store, embedder = memory.store, memory.embedder
            else:
                store, embedder = await _session_store(session)
            searcher.append(KnowledgeSearch(spec, store, embedder))
        query = str(arguments.get("query") or "").strip()
        if not query:
            query = next((t.user_text for t in reversed(session.log.turns) if t.user_text), "")
        return await searcher[0].search(query)

    return run


async def _session_store(session: Any) -> tuple[Any, Any]:
    """Outside the call host (``voxline simulate``): the default store ($DATABASE_URL or
    ./var/voxline.db, where ``voxline kb build`` wrote), opened once per session and
    closed when its pipeline finishes."""
    own = getattr(session, "_knowledge_store", None)
    if own is None:
        from voxline.memory import local_embedder, open_store

        store = await open_store(None)
        embedder = await asyncio.to_thread(local_embedder)
        own = session._knowledge_store = (store, embedder)

        async def close(*_args: Any) -> None:
            await store.close()

        session.worker.add_event_handler("on_pipeline_finished", close)
    return own
