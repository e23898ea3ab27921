"""Load the Python functions an AgentSpec names as tools.

A tool's parameters come from its function signature (type hints and defaults), so
the JSON schema the LLM sees and the validation of the LLM's arguments can't drift
apart. The docstring's first paragraph is the description when the spec gives none.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pydantic import BaseModel, ValidationError, create_model

from voxline.errors import ToolError, VoxlineError
from voxline.integrations.tools.settings import PARAMETER, ToolConfig
from voxline.spec import AgentSpec, ToolSpec


@dataclass(frozen=True)
class Tool:
    spec: ToolSpec
    fn: Callable[..., Any]
    arguments: type[BaseModel]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def description(self) -> str:
        return self.spec.description or (inspect.getdoc(self.fn) or "").split("\n\n")[0]

    def json_schema(self) -> dict[str, Any]:
        schema = self.arguments.model_json_schema()
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        return schema

    def function_schema(self) -> FunctionSchema:
        schema = self.json_schema()
        return FunctionSchema(
            name=self.name,
            description=self.description,
            properties=schema.get("properties", {}),
            required=schema.get("required", []),
        )

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Check the LLM's arguments against the signature; raise ToolError if wrong."""
        try:
            return self.arguments.model_validate(arguments).model_dump()
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(map(str, err['loc'])) or 'arguments'}: {err['msg']}" for err in e.errors()
            )
            raise ToolError(f"invalid arguments for {self.name}: {problems}") from None

    @functools.cached_property
    def wants_config(self) -> bool:  # read once per tool, not per call
        return PARAMETER in inspect.signature(self.fn).parameters

    async def call(self, arguments: dict[str, Any], config: ToolConfig | None = None) -> Any:
        """Validate, then run the function (sync functions run in a thread) with a timeout.
        A function with a ``tool_config`` parameter gets its tenant's settings and secrets."""
        kwargs = self.validate(arguments)
        if self.wants_config:
            kwargs[PARAMETER] = config or ToolConfig()
        if inspect.iscoroutinefunction(self.fn):
            work: Awaitable[Any] = self.fn(**kwargs)
        else:
            work = asyncio.to_thread(self.fn, **kwargs)
        try:
            return await asyncio.wait_for(work, self.spec.timeout_secs)
        except TimeoutError:
            raise ToolError(
                f"{self.name} timed out after {self.spec.timeout_secs:g}s", retryable=True
            ) from None


def _import_handler(handler: str, base_dir: Path) -> Callable[..., Any]:
    target, _, attr = handler.rpartition(":")
    if target.endswith(".py"):
        path = (base_dir / target).resolve()
        if not path.exists():
            raise ToolError(f"tool file not found: {path}")
        module_name = f"voxline_tools_{abs(hash(str(path)))}"
        module = sys.modules.get(module_name)
        if module is None:
            module_spec = importlib.util.spec_from_file_location(module_name, path)
            assert module_spec and module_spec.loader
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_name] = module
            module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ToolError(f"{handler}: {attr!r} is not a function in {target}")
    return fn


def _arguments_model(name: str, fn: Callable[..., Any]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or param.name == PARAMETER:
            continue  # not the LLM's to fill
        annotation = param.annotation if param.annotation is not inspect.Parameter.empty else str
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, default)
    return create_model(f"{name}_arguments", __config__={"extra": "forbid"}, **fields)


def load_tool(tool: ToolSpec, base_dir: Path) -> Tool:
    if tool.handler.startswith("http:"):  # a webhook (voxline.integrations.tools.http)
        from voxline.integrations.tools.http import HttpTool

        return HttpTool(tool)  # type: ignore[return-value]
    try:
        fn = _import_handler(tool.handler, base_dir)
    except ToolError:
        raise
    except Exception as e:  # any import-time failure of user code
        raise ToolError(f"cannot import {tool.handler}: {type(e).__name__}: {e}") from e
    return Tool(spec=tool, fn=fn, arguments=_arguments_model(tool.name, fn))


# transfer_call works on phone calls; the rest are voxline.orchestration's.
BUILTINS = {"end_call", "transfer_call", "search_knowledge", "transfer_to_human", "call_task", "report_outcome"}


def is_builtin(tool: ToolSpec) -> bool:
    return tool.handler.startswith("builtin:")


def load_tools(spec: AgentSpec) -> list[Tool]:
    """The spec's Python tools (built-ins such as ``builtin:end_call`` are wired by the builder)."""
    return [load_tool(tool, spec.base_dir) for tool in spec.tools if not is_builtin(tool)]


def check_tools(spec: AgentSpec) -> list[tuple[str, str]]:
    problems = []
    for i, tool in enumerate(spec.tools):
        if is_builtin(tool):
            if tool.handler.removeprefix("builtin:") not in BUILTINS:
                problems.append((f"tools.{i}.handler", f"unknown built-in {tool.handler!r}; "
                                 f"known: {', '.join('builtin:' + b for b in sorted(BUILTINS))}"))
            continue
        try:
            load_tool(tool, spec.base_dir)
        except (ToolError, VoxlineError) as e:
            problems.append((f"tools.{i}.handler", str(e)))
    return problems
