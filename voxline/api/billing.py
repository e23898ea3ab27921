"""Usage-based billing: each tenant's daily usage sent to Stripe as Billing Meter Events.

A tenant is billed when it has a Stripe customer id (``cus_...``) in its billing
settings; it may also carry a Stripe secret key of its own (sealed, write-only), else
the platform's ``STRIPE_API_KEY`` is used. Which quantities go out, under which meter
event names, comes from the environment:

    VOXLINE_STRIPE_METER_MINUTES  call minutes per UTC day, rounded up (default ``voxline_call_minutes``;
                                  empty: not sent)
    VOXLINE_STRIPE_METER_COST     provider cost per UTC day in US cents, rounded (unset: not sent)
    STRIPE_API_BASE               another address for the Stripe API (a proxy)

One event per (tenant, UTC day, meter), with a deterministic ``identifier`` that is also
its Idempotency-Key. Stripe keeps identifiers unique for at least 24 hours only, so each
accepted event is also written to the audit log; a later run skips what is there
(``resend=True`` sends it again, same identifier). Only days that have ended are sent, and
none older than Stripe takes (35 days). Stripe values are whole numbers.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa

from voxline.api.store import PlatformStore
from voxline.errors import VoxlineError
from voxline.memory.models import AuditLog

log = logging.getLogger("voxline.billing")

API_KEY_ENV = "STRIPE_API_KEY"
API_BASE_ENV = "STRIPE_API_BASE"
METER_ENVS = {"minutes": "VOXLINE_STRIPE_METER_MINUTES", "cost_cents": "VOXLINE_STRIPE_METER_COST"}
DEFAULT_MINUTES_METER = "voxline_call_minutes"
# Tenant-wide settings live in a tool_configs row no agent can own (agent names start
# with a letter or digit): sealed secrets and audited changes come with it.
SETTINGS_AGENT, SETTINGS_TOOL = "_tenant", "stripe"
LEDGER_ACTION = "billing.meter_event"
CUSTOMER_ID = re.compile(r"^cus_[A-Za-z0-9]{1,250}\Z")
_MAX_AGE = timedelta(days=35) - timedelta(hours=1)  # Stripe's limit, less a margin for clocks
_IDENTIFIER_MAX = 100


class BillingError(VoxlineError):
    """Billing is not configured, or Stripe refused or could not be reached."""


@dataclass(frozen=True)
class Meter:
    quantity: str  # "minutes" | "cost_cents"
    event_name: str


@dataclass(frozen=True)
class BillingOptions:
    meters: tuple[Meter, ...]
    api_key: str | None = field(default=None, repr=False)
    api_base: str | None = None
    attempts: int = 5  # per event, the first included
    base_delay_secs: float = 0.5
    max_delay_secs: float = 8.0
    timeout_secs: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> BillingOptions:
        env = os.environ if env is None else env
        meters = []
        minutes = env.get(METER_ENVS["minutes"], DEFAULT_MINUTES_METER).strip()
        cost = env.get(METER_ENVS["cost_cents"], "").strip()
        if minutes:
            meters.append(Meter("minutes", minutes))
        if cost:
            meters.append(Meter("cost_cents", cost))
        values: dict[str, Any] = {"meters": tuple(meters), "api_key": env.get(API_KEY_ENV) or None,
                                  "api_base": env.get(API_BASE_ENV) or None}
        return cls(**{**values, **overrides})


# -- settings -------------------------------------------------------------------------------
async def billing_settings(store: PlatformStore, tenant: str) -> dict[str, Any]:
    """What the API shows: the customer id, and whether the tenant has a Stripe key of its own."""
    row = await store.tool_config(tenant, SETTINGS_AGENT, SETTINGS_TOOL)
    return {"stripe_customer_id": (row or {}).get("settings", {}).get("customer_id"),
            "stripe_api_key": (row or {}).get("secrets", {}).get("api_key")}


async def set_billing(store: PlatformStore, tenant: str, *, actor: str, customer_id: str | None = None,
                      clear_customer: bool = False, api_key: str | None = None,
                      clear_api_key: bool = False) -> dict[str, Any]:
    if customer_id is not None and not CUSTOMER_ID.match(customer_id):
        raise ValueError("a Stripe customer id looks like cus_...")
    if api_key is not None and not api_key.startswith(("sk_", "rk_")):
        raise ValueError("a Stripe secret key starts with sk_ (or rk_ for a restricted key)")
    settings = None
    if customer_id is not None or clear_customer:
        current = await store.tool_config(tenant, SETTINGS_AGENT, SETTINGS_TOOL)
        settings = dict((current or {}).get("settings") or {})
        if clear_customer:
            settings.pop("customer_id", None)
        else:
            settings["customer_id"] = customer_id
    secrets: dict[str, str | None] | None = None
    if api_key is not None or clear_api_key:
        secrets = {"api_key": None if clear_api_key else api_key}
    await store.put_tool_config(tenant, SETTINGS_AGENT, SETTINGS_TOOL, settings=settings, secrets=secrets,
                                functions=None, actor=actor)
    return await billing_settings(store, tenant)


# -- what is owed ------------------------------------------------------------------------------
def identifier(tenant: str, day: str, event_name: str) -> str:
    """Deterministic: the same tenant, day and meter always name the same event."""
    readable = f"voxline:{tenant}:{day}:{event_name}"
    if len(readable) <= _IDENTIFIER_MAX:
        return readable
    digest = hashlib.sha256(f"{tenant}\0{day}\0{event_name}".encode()).hexdigest()[:40]
    return f"voxline:{digest}:{day}"


def quantity(day: dict[str, Any], meter: Meter) -> int:
    if meter.quantity == "minutes":
        return math.ceil(round(float(day["minutes"]), 6))
    cents = Decimal(str(day["cost_usd"])) * 100
    return int(cents.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


# -- talking to Stripe ---------------------------------------------------------------------------
def _client(api_key: str, options: BillingOptions) -> tuple[Any, Any]:
    """A StripeClient and its HTTP client (to close)."""
    from voxline.extras import require

    stripe = require("stripe", "stripe")
    bases = {"api": options.api_base.rstrip("/")} if options.api_base else None
    http = stripe.HTTPXClient(timeout=options.timeout_secs)
    # Retries are ours (below): the SDK's own leave 429 alone.
    return stripe.StripeClient(api_key, base_addresses=bases, max_network_retries=0, http_client=http), http


def _retryable(e: Exception) -> bool:
    import stripe

    if isinstance(e, stripe.APIConnectionError | stripe.RateLimitError):
        return True
    headers = getattr(e, "headers", None) or {}
    if str(headers.get("stripe-should-retry", "")).lower() == "false":
        return False
    status = getattr(e, "http_status", None)
    return status is None or status in (408, 409, 429) or status >= 500


def _duplicate(e: Exception) -> bool:
    """Stripe already holds an event with this identifier: it was delivered before."""
    message = str(getattr(e, "user_message", None) or e)
    return getattr(e, "http_status", None) == 400 and "already exists with identifier" in message


def _describe(e: Exception, api_key: str) -> str:
    body = (getattr(e, "json_body", None) or {}).get("error") or {}
    status = getattr(e, "http_status", None)
    what = "/".join(str(x) for x in (body.get("type"), body.get("code")) if x)
    message = body.get("message") or str(e) or type(e).__name__
    text = f"Stripe answered {status}{f' ({what})' if what else ''}: {message}" if status else \
        f"Stripe could not be reached: {type(e).__name__}: {message}"
    return text.replace(api_key, "[redacted]")


async def _send(client: Any, params: dict[str, Any], api_key: str, options: BillingOptions) -> str:
    """One meter event, retried on 429/5xx/network errors: "sent" or "duplicate"."""
    import stripe

    service = getattr(client, "v1", client).billing.meter_events
    for attempt in range(1, options.attempts + 1):
        try:
            await service.create_async(params, {"idempotency_key": params["identifier"]})
            return "sent"
        except stripe.StripeError as e:
            if _duplicate(e):
                return "duplicate"
            if not _retryable(e) or attempt == options.attempts:
                tries = f" (after {attempt} attempts)" if attempt > 1 else ""
                raise BillingError(_describe(e, api_key) + tries, retryable=_retryable(e)) from None
            delay = min(options.max_delay_secs, options.base_delay_secs * 2 ** (attempt - 1))
            log.info("- billing %s: Stripe answered %s, retrying in %.1f s", params["identifier"],
                     getattr(e, "http_status", None) or type(e).__name__, delay)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
    raise AssertionError("unreachable")


# -- the export ---------------------------------------------------------------------------------------
async def _ledger(store: PlatformStore, tenant: str, identifiers: list[str]) -> dict[str, int]:
    """identifier -> value, for the events of ``tenant`` already accepted by Stripe."""
    if not identifiers:
        return {}
    async with store._tx() as conn:
        rows = await conn.execute(sa.select(AuditLog.target_id, AuditLog.detail).where(
            AuditLog.tenant_id == tenant, AuditLog.action == LEDGER_ACTION, AuditLog.target_id.in_(identifiers)))
        return {r.target_id: int((r.detail or {}).get("value", 0)) for r in rows}


async def _remember(store: PlatformStore, tenant: str, event: dict[str, Any], actor: str) -> None:
    async with store._tx() as conn:
        await store._audit(conn, tenant, actor, LEDGER_ACTION, "meter_event", event["identifier"],
                           event_name=event["event_name"], day=event["day"], value=event["value"],
                           status=event["status"])


async def _tenant_key(store: PlatformStore, tenant: str, options: BillingOptions) -> str | None:
    secrets = await store.tool_secrets(tenant, SETTINGS_AGENT, SETTINGS_TOOL)
    return secrets.get("api_key") or options.api_key


async def export_usage(store: PlatformStore, *, since: date, until: date | None = None,
                       tenants: list[str] | None = None, options: BillingOptions | None = None,
                       resend: bool = False, actor: str = "billing-export",
                       now: datetime | None = None) -> dict[str, Any]:
    """Send each tenant's usage of the UTC days ``since`` <= day < ``until`` (default and at
    most: today, which has not ended) as meter events. Returns what was done, per tenant
    and per event; ``ok`` is False when an event could not be sent."""
    options = options or BillingOptions.from_env()
    if not options.meters:
        raise BillingError(f"no Stripe meter configured: set {METER_ENVS['minutes']} or {METER_ENVS['cost_cents']}")
    now = now or datetime.now(UTC)
    today = now.astimezone(UTC).date()
    until = min(until or today, today)
    report: dict[str, Any] = {"since": since.isoformat(), "until": until.isoformat(), "ok": True,
                              "tenants": [], "events": []}
    names = tenants if tenants is not None else [t["id"] for t in await store.list_tenants()]
    for tenant in names:
        entry = await _export_tenant(store, tenant, since=since, until=until, options=options,
                                     resend=resend, actor=actor, now=now, events=report["events"])
        report["tenants"].append(entry)
        report["ok"] = report["ok"] and entry["status"] != "failed"
    counts: dict[str, int] = {}
    for event in report["events"]:
        counts[event["status"]] = counts.get(event["status"], 0) + 1
    report["counts"] = counts
    return report


async def _export_tenant(store: PlatformStore, tenant: str, *, since: date, until: date,
                         options: BillingOptions, resend: bool, actor: str, now: datetime,
                         events: list[dict[str, Any]]) -> dict[str, Any]:
    if await store.tenant(tenant) is None:
        return {"tenant": tenant, "status": "skipped", "reason": "no such tenant"}
    customer = (await billing_settings(store, tenant))["stripe_customer_id"]
    if not customer:
        return {"tenant": tenant, "status": "skipped", "reason": "no Stripe customer id"}
    days = [] if since >= until else await store.usage_by_day(tenant, since=_day_start(since),
                                                              until=_day_start(until))
    owed = []
    for day in days:
        for meter in options.meters:
            value = quantity(day, meter)
            if value > 0:
                owed.append({"tenant": tenant, "day": day["day"], "quantity": meter.quantity,
                             "event_name": meter.event_name, "value": value,
                             "identifier": identifier(tenant, day["day"], meter.event_name)})
    entry: dict[str, Any] = {"tenant": tenant, "status": "exported", "customer": customer}
    if not owed:
        return entry
    try:
        api_key = await _tenant_key(store, tenant, options)
    except VoxlineError as e:  # a sealed key and no master key to open it
        return {**entry, "status": "failed", "reason": f"the tenant's Stripe key cannot be opened: {e}"}
    if not api_key:
        return {**entry, "status": "failed", "reason": f"no Stripe API key: set {API_KEY_ENV}"}
    ledger = await _ledger(store, tenant, [e["identifier"] for e in owed])
    client, http = _client(api_key, options)
    failed: str | None = None
    try:
        for event in owed:
            events.append(event)
            sent_before = ledger.get(event["identifier"])
            day_end = _day_start(date.fromisoformat(event["day"])) + timedelta(days=1) - timedelta(seconds=1)
            if failed is not None:
                event["status"] = "pending"  # not tried: an earlier event of this tenant failed
            elif sent_before is not None and sent_before != event["value"]:
                event["status"], event["sent_value"] = "changed", sent_before
                event["detail"] = "sent before with another value; Stripe keeps the first"
            elif sent_before is not None and not resend:
                event["status"] = "already_sent"
            elif now - day_end > _MAX_AGE:
                event["status"], event["detail"] = "too_old", "Stripe takes events of the past 35 days"
            else:
                params = {"event_name": event["event_name"], "identifier": event["identifier"],
                          "timestamp": int(day_end.timestamp()),
                          "payload": {"stripe_customer_id": customer, "value": str(event["value"])}}
                try:
                    event["status"] = await _send(client, params, api_key, options)
                except BillingError as e:
                    event["status"], event["detail"] = "failed", str(e)
                    failed = str(e)
                    log.warning("- billing %s %s %s: %s", tenant, event["day"], event["event_name"], e)
                    continue
                if sent_before is None:
                    await _remember(store, tenant, event, actor)
                log.info("- billing %s %s %s: %s %d", tenant, event["day"], event["event_name"],
                         event["status"], event["value"])
    finally:
        await http.close_async()
    if failed is not None:
        return {**entry, "status": "failed", "reason": failed}
    return entry
