"""The ``voxline`` command."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from voxline.api.billing_cli import billing_app
from voxline.errors import SpecError, VoxlineError

app = typer.Typer(help="voxline: self-hosted voice agents.", no_args_is_help=True,
                  pretty_exceptions_enable=False)

EXAMPLE_SCENARIO = Path(__file__).resolve().parent.parent / "examples" / "restaurant" / "scenario.yaml"


def _quiet_logs(verbose: bool) -> None:
    """Pipecat logs every frame link at DEBUG and tuning advice at WARNING; a command
    shows errors unless asked for more."""
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="DEBUG" if verbose else "ERROR")
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING)


@app.callback()
def _options(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs.")] = False) -> None:
    _quiet_logs(verbose)


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
    from voxline.integrations.providers.registry import describe_providers

    typer.echo(f"{agent}: ok (agent {spec.name!r}, {len(spec.tools)} tool(s))")
    for kind, provider, uses in describe_providers(spec):
        typer.echo(f"  {kind}: {provider} -> {uses}")


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
    import os

    from voxline.pipelines.call_memory import MemoryRuntime, simulate_remembered
    from voxline.pipelines.scenario import load_scenario

    runtime = await MemoryRuntime.open(os.environ.get("DATABASE_URL"))
    try:
        reports = []
        for path in paths:  # in order: later calls know what earlier ones learned
            report = await simulate_remembered(load_scenario(path), runtime=runtime)
            reports.append(report.to_json())
        return reports
    finally:
        await runtime.close()


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

    Prints the conversation with each turn's latency, then one summary line:
    voice-to-voice p50 and how many checked turns went right. Unlike ``simulate``, a
    missed expectation (small local models are not perfect) is reported but does not
    fail the command.
    """
    _quiet_logs(verbose)
    from voxline.pipelines.scenario import load_scenario

    try:
        reports = asyncio.run(_simulate_all([EXAMPLE_SCENARIO]))
    except (SpecError, VoxlineError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    report = reports[0]
    _print_report(report)
    typer.echo(_demo_summary(report, load_scenario(EXAMPLE_SCENARIO)))


def _demo_summary(report: dict, scenario) -> str:
    import re
    import statistics

    v2v = [t["latency_ms"]["voice_to_voice"] for t in report["turns"] if "voice_to_voice" in t["latency_ms"]]
    checked = [n for n, t in enumerate(scenario.turns, 1) if t.expect is not None]
    bad = {int(m.group(1)) for f in report["failures"] if (m := re.match(r"turn (\d+):", f))}
    if any(not re.match(r"turn \d+:", f) for f in report["failures"]):
        bad = set(checked)
    right = sum(1 for n in checked if n not in bad)
    p50 = f"{statistics.median(v2v):.0f} ms" if v2v else "n/a"
    per_turn = ", ".join(f"{v:.0f}" for v in v2v)
    return (f"summary: voice-to-voice p50 {p50} over {len(v2v)} answered turns ({per_turn} ms); "
            f"turns right {right}/{len(checked)}")


@app.command()
def serve(
    agents: Annotated[Path, typer.Option(help="Folder of agents (*/agent.yaml) and routes.yaml.")],
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8080,
    workers: Annotated[int | None, typer.Option(help="Processes (default: one per core).")] = None,
    log_level: Annotated[str, typer.Option(help="debug | info | warning | error")] = "info",
    sip: Annotated[str | None, typer.Option(help="Also answer SIP calls (UDP and TCP) on HOST:PORT.")] = None,
) -> None:
    """Serve calls (Twilio webhooks and media streams) for every agent in a folder.

    Each worker loads the agents' models once at startup; routes.yaml maps dialed
    numbers to agents (see examples/routes.yaml)."""
    from voxline.server import serve as run_server

    try:
        run_server(agents, host=host, port=port, workers=workers, log_level=log_level.lower(), sip=sip)
    except SpecError as e:
        typer.echo(f"invalid agents folder: {e}", err=True)
        raise typer.Exit(2) from None


@app.command()
def call(
    number: Annotated[str, typer.Argument(help="The number to call (E.164).")],
    agent: Annotated[str, typer.Option(help="The agent that speaks.")],
    server: Annotated[str, typer.Option(help="The running voxline server.")] = "http://127.0.0.1:8080",
    from_: Annotated[str | None, typer.Option("--from", help="Caller id.")] = None,
    via: Annotated[str, typer.Option(help="twilio: through the running server; sip: from here, "
                                          "through $VOXLINE_SIP_TRUNK.")] = "twilio",
    agents: Annotated[Path | None, typer.Option(help="With --via sip: the agents folder.")] = None,
) -> None:
    """Place an outbound call through a running server (needs $VOXLINE_API_KEY), or
    with --via sip through a SIP trunk from this process (the call runs until it ends)."""
    try:
        if via == "sip":
            if agents is None:
                raise VoxlineError("--via sip needs --agents DIR")
            from voxline.transports.sip.place import call_via_sip

            answer = asyncio.run(call_via_sip(number, agent, agents_dir=agents, from_=from_))
        elif via == "twilio":
            from voxline.server import place_call

            answer = asyncio.run(place_call(number, agent, server=server, from_=from_))
        else:
            raise VoxlineError(f"--via {via!r}: expected twilio or sip")
    except VoxlineError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(answer))


db_app = typer.Typer(help="The call database ($DATABASE_URL; SQLite ./var/voxline.db by default).",
                     no_args_is_help=True)
memory_app = typer.Typer(help="What agents remember about callers.", no_args_is_help=True)
calls_app = typer.Typer(help="Calls: transcripts, tool calls, latencies, providers, cost.",
                        no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(memory_app, name="memory")
app.add_typer(calls_app, name="calls")
agents_app = typer.Typer(help="Agents stored in the database, with versions.", no_args_is_help=True)
app.add_typer(agents_app, name="agents")
app.add_typer(billing_app, name="billing")

_DB = typer.Option(envvar="DATABASE_URL", help="postgresql+asyncpg://... or a SQLite path/URL.")
_TENANT = typer.Option(help="Tenant the caller belongs to.")


@db_app.command("upgrade")
def db_upgrade(database_url: Annotated[str | None, _DB] = None) -> None:
    """Create or migrate the schema to the latest version (safe to run again)."""
    from voxline.memory.cli_commands import db_upgrade as upgrade

    typer.echo(json.dumps(upgrade(database_url)))


@db_app.command("sweep")
def db_sweep(database_url: Annotated[str | None, _DB] = None) -> None:
    """Close calls whose server process died mid-call (marked ended abnormally)."""
    from voxline.memory.cli_commands import db_sweep as sweep

    typer.echo(json.dumps(sweep(database_url)))


@memory_app.command("list")
def memory_list(
    caller: Annotated[str, typer.Option(help="Phone number, web user id or external id.")],
    tenant: Annotated[str, _TENANT] = "default",
    database_url: Annotated[str | None, _DB] = None,
) -> None:
    """List what is remembered about a caller (audited)."""
    from voxline.memory.cli_commands import memory_list as list_memories

    typer.echo(json.dumps(list_memories(database_url, tenant, caller), indent=2))


@memory_app.command("forget")
def memory_forget(
    caller: Annotated[str, typer.Option(help="Phone number, web user id or external id.")],
    tenant: Annotated[str, _TENANT] = "default",
    database_url: Annotated[str | None, _DB] = None,
) -> None:
    """Erase a caller's memories, summaries and transcripts (audited)."""
    from voxline.memory.cli_commands import memory_forget as forget

    typer.echo(json.dumps(forget(database_url, tenant, caller)))


@calls_app.command("list")
def calls_list(
    agent: Annotated[str | None, typer.Option(help="Only this agent's calls.")] = None,
    status: Annotated[str | None, typer.Option(help="completed | dropped | failed | in-progress ...")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    tenant: Annotated[str, _TENANT] = "default",
    database_url: Annotated[str | None, _DB] = None,
) -> None:
    """The latest calls, newest first."""
    from voxline.memory.call_views import calls_list as list_calls

    rows = list_calls(database_url, tenant, agent=agent, status=status, limit=limit)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(f"{r['id']}  {r['started_at'][:19]}  {r['agent']:<14} {r['status']:<11} "
                   f"{r['end_reason'] or '-':<15} {r['duration_secs'] or 0:>7.1f} s  ${r['cost_usd'] or 0:.4f}")


@calls_app.command("show")
def calls_show(
    call_id: Annotated[str, typer.Argument(help="The call's id (a CallSid for phone calls).")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    tenant: Annotated[str, _TENANT] = "default",
    database_url: Annotated[str | None, _DB] = None,
) -> None:
    """One call: what was said and heard, tool calls, latencies, providers and cost."""
    from voxline.memory.call_views import calls_show as show
    from voxline.memory.call_views import render

    call = show(database_url, tenant, call_id)
    if call is None:
        typer.echo(f"no call {call_id!r} in tenant {tenant!r}", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(call, indent=2, default=str) if as_json else render(call))


kb_app = typer.Typer(help="Knowledge bases: an agent's documents, chunked and embedded into the store.",
                     no_args_is_help=True)
app.add_typer(kb_app, name="kb")


@kb_app.command("build")
def kb_build(
    agent: Annotated[Path, typer.Argument(help="An agent YAML file with a knowledge: block.")],
    database_url: Annotated[str | None, _DB] = None,
) -> None:
    """Chunk and embed the agent's knowledge documents into the store (unchanged files are skipped)."""
    from voxline.knowledge.build import kb_build as build

    try:
        typer.echo(json.dumps(build(agent, database_url)))
    except SpecError as e:
        typer.echo(f"invalid agent: {e}", err=True)
        raise typer.Exit(2) from None


@agents_app.command("push")
def agents_push(
    folder: Annotated[Path, typer.Argument(help="Folder of */agent.yaml.")],
    tenant: Annotated[str, typer.Option(help="Tenant the agents belong to.")],
    note: Annotated[str | None, typer.Option(help="A note on this version.")] = None,
    database_url: Annotated[str | None, _DB] = None,
) -> None:
    """Store each agent as a new version (an unchanged spec keeps its version)."""
    from voxline.api.agents import push_dir

    try:
        typer.echo(json.dumps(push_dir(folder, tenant=tenant, database_url=database_url, note=note)))
    except SpecError as e:
        typer.echo(f"invalid agents: {e}", err=True)
        raise typer.Exit(2) from None


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
