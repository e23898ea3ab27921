"""The ``voxline`` command."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from voxline.errors import SpecError, VoxlineError

app = typer.Typer(help="voxline: self-hosted voice agents.", no_args_is_help=True,
                  pretty_exceptions_enable=False)

EXAMPLE_SCENARIO = Path(__file__).resolve().parent.parent / "examples" / "restaurant" / "scenario.yaml"


def _quiet_logs(verbose: bool) -> None:
    """Pipecat logs every frame link at DEBUG; a command shows warnings unless asked."""
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="DEBUG" if verbose else "WARNING")
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING)


@app.command()
def check(agent: Annotated[Path, typer.Argument(help="An agent YAML file.")]) -> None:
    """Validate an agent spec: schema, model files, tool imports, API key variables."""
    from voxline.spec import check_spec

    spec, problems = check_spec(agent)
    if problems:
        typer.echo(f"{agent}: {len(problems)} problem(s)", err=True)
        for path, reason in problems:
            typer.echo(f"  {path or '<root>'}: {reason}", err=True)
        raise typer.Exit(1)
    assert spec is not None
    typer.echo(f"{agent}: ok (agent {spec.name!r}, {len(spec.tools)} tool(s))")


@app.command()
def models() -> None:
    """List the local models, where they come from, and whether they are installed."""
    from voxline.integrations.providers.local.manifest import models_dir, status

    typer.echo(f"models folder: {models_dir()}")
    for entry, state in status():
        typer.echo(f"{entry.name:32s} {entry.role:11s} {state}")
        if state != "ok":
            typer.echo(f"{'':32s} get it with: {entry.install_hint}")


def _print_report(report: dict) -> None:
    echo = typer.echo
    echo(f"agent: {report['agent']}")
    if report.get("greeting_heard"):
        echo(f"  agent : {report['greeting_heard']}")
    for i, turn in enumerate(report["turns"], 1):
        echo(f"--- turn {i}")
        echo(f"  caller: {turn['caller_said'] or '(silence)'}")
        if turn["agent_heard"] and turn["agent_heard"] != turn["caller_said"]:
            echo(f"  (agent heard: {turn['agent_heard']})")
        for call in turn["tool_calls"]:
            outcome = f"error: {call['error']}" if call["error"] else json.dumps(call["result"])
            echo(f"  tool  : {call['name']}({json.dumps(call['arguments'])}) -> {outcome[:160]}")
        said = turn["caller_heard"] or turn["agent_said"] or "(nothing)"
        echo(f"  agent : {said}{'  [interrupted]' if turn['interrupted'] else ''}")
        if turn["latency_ms"]:
            echo("  latency: " + ", ".join(f"{k} {v:.0f} ms" for k, v in turn["latency_ms"].items()))
    echo(f"--- call ended: {report['end_reason']}")
    echo("PASSED" if report["passed"] else "FAILED:\n  " + "\n  ".join(report["failures"]))


async def _simulate_all(paths: list[Path]) -> list[dict]:
    from voxline.pipelines.scenario import load_scenario
    from voxline.pipelines.simulate import simulate

    reports = []
    for path in paths:  # in order: later calls see what earlier ones stored
        reports.append((await simulate(load_scenario(path))).to_json())
    return reports


@app.command()
def simulate(
    scenarios: Annotated[list[Path], typer.Argument(help="Scenario YAML files, run in order.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Call an agent with a scripted caller, through the real pipeline, in real time."""
    _quiet_logs(verbose)
    try:
        reports = asyncio.run(_simulate_all(scenarios))
    except SpecError as e:
        typer.echo(f"invalid scenario or agent: {e}", err=True)
        raise typer.Exit(2) from None
    except VoxlineError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(reports[0] if len(reports) == 1 else {"calls": reports}))
    else:
        for report in reports:
            _print_report(report)
    if not all(r["passed"] for r in reports):
        raise typer.Exit(1)


@app.command()
def demo(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    """Run the restaurant example agent through a simulated phone call on local models.

    Prints the conversation. Unlike ``simulate``, a missed expectation (small local
    models are not perfect) is reported but does not fail the command.
    """
    try:
        simulate([EXAMPLE_SCENARIO], as_json=False, verbose=verbose)
    except typer.Exit as e:
        if e.exit_code != 1:
            raise


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
