"""The agents a server runs and how calls reach them.

``load_agents(agents_dir)`` loads every ``*/agent.yaml`` under ``agents_dir`` (an agent
is known by its ``name``) and the routing table ``agents_dir/routes.yaml``::

    # Dialed number (E.164 or sip:...) -> agent name. Spaces/dashes are ignored.
    numbers:
      "+1 555 000 1111": restaurant
    # Optional, per agent: where ``transfer_call`` may send the caller, by label.
    # The model only ever picks a label, never a number.
    transfer:
      restaurant: {front desk: "+15550002222", manager: "sip:manager@pbx.example.com"}
    # Optional, per agent: caller id for outbound calls. Default: the first number
    # that routes to the agent.
    outbound_from:
      restaurant: "+15550001111"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxline.errors import SpecError
from voxline.spec import AgentSpec, load_spec, load_yaml


def normalize_number(number: str) -> str:
    """E.164-ish canonical form used for routing lookups: '+' and digits only."""
    number = number.strip()
    if number.lower().startswith("sip:"):
        return number.lower()
    digits = "".join(ch for ch in number if ch.isdigit())
    return f"+{digits}" if digits else number


ROUTES_FILE = "routes.yaml"


@dataclass(frozen=True)
class RoutingTable:
    numbers: Mapping[str, str] = field(default_factory=dict)  # dialed number -> agent
    transfer: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # agent -> label -> target
    outbound_from: Mapping[str, str] = field(default_factory=dict)  # agent -> caller id

    def caller_id_for(self, agent: str) -> str | None:
        if agent in self.outbound_from:
            return self.outbound_from[agent]
        return next((n for n, a in self.numbers.items() if a == agent and not n.startswith("sip:")), None)


def load_agents(agents_dir: Path) -> dict[str, AgentSpec]:
    """Every ``*/agent.yaml`` under ``agents_dir`` (and ``agents_dir/agent.yaml``), by name."""
    agents: dict[str, AgentSpec] = {}
    problems: list[tuple[str, str]] = []
    paths = sorted({*agents_dir.glob("agent.yaml"), *agents_dir.glob("*/agent.yaml")})
    for path in paths:
        try:
            spec = load_spec(path)
        except SpecError as e:
            problems += [(f"{path}: {where}", why) for where, why in e.problems]
            continue
        if spec.name in agents:
            problems.append((str(path), f"agent name {spec.name!r} is used twice"))
        agents[spec.name] = spec
    if problems:
        raise SpecError(problems)
    if not agents:
        raise SpecError([(str(agents_dir), "no */agent.yaml found")])
    return agents


def load_routes(agents_dir: Path, agents: Mapping[str, AgentSpec]) -> RoutingTable:
    """Read ``routes.yaml`` (absent: no inbound numbers). Unknown agents are errors."""
    path = agents_dir / ROUTES_FILE
    if not path.exists():
        return RoutingTable()
    data = load_yaml(path) or {}
    problems: list[tuple[str, str]] = []
    if not isinstance(data, dict):
        raise SpecError([(str(path), "expected a mapping with 'numbers'")])
    unknown = set(data) - {"numbers", "transfer", "outbound_from"}
    problems += [(f"{path}: {k}", "unknown key") for k in sorted(unknown)]

    def mapping(key: str) -> dict[str, Any]:
        value = data.get(key) or {}
        if not isinstance(value, dict):
            problems.append((f"{path}: {key}", "expected a mapping"))
            return {}
        return {str(k): v for k, v in value.items()}

    numbers = {normalize_number(n): str(a) for n, a in mapping("numbers").items()}
    transfer: dict[str, dict[str, str]] = {}
    for agent, targets in mapping("transfer").items():
        if not isinstance(targets, dict):
            problems.append((f"{path}: transfer.{agent}", "expected {label: number}"))
            continue
        transfer[agent] = {str(label): str(target) for label, target in targets.items()}
    outbound = {agent: str(number) for agent, number in mapping("outbound_from").items()}
    for where, agent in [*((f"numbers.{n}", a) for n, a in numbers.items()),
                         *((f"transfer.{a}", a) for a in transfer),
                         *((f"outbound_from.{a}", a) for a in outbound)]:
        if agent not in agents:
            problems.append((f"{path}: {where}", f"unknown agent {agent!r}; known: {', '.join(sorted(agents))}"))
    if problems:
        raise SpecError(problems)
    return RoutingTable(numbers=numbers, transfer=transfer, outbound_from=outbound)
