"""``voxline billing ...``: the Stripe usage export from the command line (see
:mod:`voxline.api.billing`). Imported by the CLI at start, so it imports the rest on use."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any

import typer

from voxline.errors import VoxlineError

if TYPE_CHECKING:
    from voxline.api.store import PlatformStore

billing_app = typer.Typer(help="Usage-based billing: daily usage to Stripe meters (the stripe extra).",
                          no_args_is_help=True)
_DB = typer.Option(envvar="DATABASE_URL", help="postgresql+asyncpg://... or a SQLite path/URL.")


def _with_store(database_url: str | None, work: Callable[[PlatformStore], Awaitable[Any]]) -> Any:
    from voxline.api.secrets import Envelopes
    from voxline.api.store import PlatformStore
    from voxline.memory.store import open_store

    async def run() -> Any:
        # migrate=False: an admin command never changes the schema behind the operator's back.
        store = await open_store(database_url, migrate=False)
        try:
            return await work(PlatformStore(store, Envelopes()))
        finally:
            await store.close()

    return asyncio.run(run())


def _date(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"not a date (YYYY-MM-DD): {value!r}", param_hint=name) from None


@billing_app.command("customer")
def customer(
    tenant: Annotated[str, typer.Argument(help="The tenant.")],
    customer_id: Annotated[str | None, typer.Argument(help="Its Stripe customer id (cus_...); "
                                                           "left out: the tenant is not billed.")] = None,
    database_url: Annotated[str | None, _DB] = None,
) -> None:
    """Set (or clear) the Stripe customer a tenant's usage is billed to."""
    from voxline.api.billing import set_billing

    async def work(store: PlatformStore) -> dict[str, Any]:
        if await store.tenant(tenant) is None:
            raise VoxlineError(f"no tenant {tenant!r}")
        settings = await set_billing(store, tenant, actor="cli", customer_id=customer_id,
                                     clear_customer=customer_id is None)
        return {"tenant": tenant, **settings}

    try:
        typer.echo(json.dumps(_with_store(database_url, work)))
    except (ValueError, VoxlineError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


@billing_app.command("export")
def export(
    since: Annotated[str, typer.Option(help="First UTC day (YYYY-MM-DD).")],
    until: Annotated[str | None, typer.Option(help="The day after the last (default and at most: today).")] = None,
    tenant: Annotated[list[str] | None, typer.Option(help="Only this tenant (repeatable).")] = None,
    resend: Annotated[bool, typer.Option(help="Send again what Stripe accepted before (same identifiers).")] = False,
    database_url: Annotated[str | None, _DB] = None,
) -> None:
    """Send each tenant's usage per UTC day to Stripe as meter events ($STRIPE_API_KEY).

    A re-run never bills twice: every event has a fixed identifier, and what Stripe
    accepted is remembered in the audit log. Exits 1 when an event could not be sent."""
    from voxline.api.billing import export_usage

    first, last = _date(since, "--since"), _date(until, "--until")
    assert first is not None
    try:
        report = _with_store(database_url, lambda store: export_usage(
            store, since=first, until=last, tenants=tenant or None, resend=resend, actor="cli"))
    except VoxlineError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(report, indent=2))
    if not report["ok"]:
        raise typer.Exit(1)
