"""Agents kept in the database: push a folder as new versions, load the active ones.

``push_dir(DIR, tenant=T)`` is ``voxline agents push DIR --tenant T``: every
``*/agent.yaml`` (and ``DIR/agent.yaml``) is validated and stored as a new version when
it differs from the active one. A server loads the active versions of every tenant
next to its folder agents (:func:`load_stored_agents`); a call of a stored agent runs
as that tenant, and the version it ran is recorded with the call.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from voxline.api.store import PlatformStore, spec_sha256
from voxline.errors import SpecError
from voxline.spec import AgentSpec, load_yaml, parse_spec

log = logging.getLogger("voxline.api")


def prompt_sha256(spec: AgentSpec) -> str:
    return hashlib.sha256(spec.system_prompt.encode()).hexdigest()[:16]


def validate(data: Any, *, tenant: str, base_dir: Path | None = None) -> tuple[dict[str, Any], AgentSpec]:
    """The stored form of a spec (the author's mapping, JSON-clean) and its AgentSpec.
    The spec runs as ``tenant`` whatever its ``memory.tenant`` says."""
    if not isinstance(data, dict):
        raise SpecError([("", "expected a mapping")])
    data = json.loads(json.dumps(data, default=str))
    memory = data.get("memory") or {}
    if not isinstance(memory, dict):
        raise SpecError([("memory", "expected a mapping")])
    data["memory"] = {**memory, "tenant": tenant}
    spec = parse_spec(data, base_dir=base_dir)
    return data, spec


def spec_digest(spec: AgentSpec) -> str:
    """A hash of what an agent runs (folder agents have no stored version)."""
    return spec_sha256(spec.model_dump(mode="json"))


async def push_specs(store: PlatformStore, tenant: str, paths: list[Path], *, actor: str,
                     note: str | None = None) -> list[dict[str, Any]]:
    problems: list[tuple[str, str]] = []
    checked: list[tuple[dict[str, Any], AgentSpec]] = []
    for path in paths:
        try:
            checked.append(validate(load_yaml(path), tenant=tenant, base_dir=path.parent))
        except SpecError as e:
            problems += [(f"{path}: {where}", why) for where, why in e.problems]
    if problems:
        raise SpecError(problems)  # nothing stored unless every spec is valid
    return [await store.push_agent(tenant, data, prompt_sha256=prompt_sha256(spec), actor=actor, note=note)
            for data, spec in checked]


def push_dir(agents_dir: Path, *, tenant: str, database_url: str | None = None, actor: str = "cli",
             note: str | None = None) -> list[dict[str, Any]]:
    """`voxline agents push DIR --tenant T`: [{name, version, changed}] per agent."""
    from voxline.memory.store import open_store

    agents_dir = Path(agents_dir)
    paths = sorted({*agents_dir.glob("agent.yaml"), *agents_dir.glob("*/agent.yaml")})
    if not paths:
        raise SpecError([(str(agents_dir), "no */agent.yaml found")])

    async def run() -> list[dict[str, Any]]:
        base = await open_store(database_url, migrate=False)
        try:
            store = PlatformStore(base)
            if await store.tenant(tenant) is None:
                raise SpecError([("--tenant", f"no tenant {tenant!r}: create it first (POST /api/v1/tenants)")])
            return await push_specs(store, tenant, paths, actor=actor, note=note)
        finally:
            await base.close()

    return asyncio.run(run())


def without_disabled(spec: AgentSpec, disabled: set[str]) -> AgentSpec:
    """The spec with the switched-off functions removed from its tools (and examples)."""
    if not disabled:
        return spec
    tools = [t for t in spec.tools if t.name not in disabled]
    examples = [e for e in spec.examples if not set(e.call or {}) & disabled]
    return spec.model_copy(update={"tools": tools, "examples": examples})


async def load_stored_agents(store: PlatformStore) -> dict[str, tuple[AgentSpec, str, int]]:
    """name -> (spec, tenant, version) of every tenant's active agents, functions
    switched off in the tool settings removed."""
    out: dict[str, tuple[AgentSpec, str, int]] = {}
    disabled: dict[str, dict[str, set[str]]] = {}
    for row in await store.active_agents():
        tenant = row["tenant_id"]
        if tenant not in disabled:
            disabled[tenant] = await store.disabled_functions(tenant)
        try:
            _data, spec = validate(row["spec"], tenant=tenant)
        except SpecError as e:
            log.warning("- stored agent %s/%s v%s is invalid here: %s", tenant, row["name"], row["version"], e)
            continue
        spec = without_disabled(spec, disabled[tenant].get(spec.name, set()))
        if spec.name in out:
            # The call host knows agents by name: one name, one tenant per deployment.
            log.warning("- agent name %s is used by tenants %s and %s: serving %s's", spec.name,
                        out[spec.name][1], tenant, out[spec.name][1])
            continue
        out[spec.name] = (spec, tenant, int(row["version"]))
    return out
