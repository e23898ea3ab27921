"""The admin API's billing paths (platform admin only), mounted by :mod:`voxline.api.routes`:

- ``GET/PUT /tenants/{tenant}/billing``: the tenant's Stripe customer id and, write-only,
  a Stripe key of its own;
- ``POST /billing/export``: usage per tenant per UTC day to Stripe (:mod:`voxline.api.billing`).
"""

# No `from __future__ import annotations`: FastAPI reads the dependencies below from live annotations.
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from voxline.api.auth import PLATFORM, Principal, not_found
from voxline.api.billing import BillingError, billing_settings, export_usage, set_billing

if TYPE_CHECKING:
    from voxline.api.platform import Platform


class BillingIn(BaseModel):
    """Fields left out are kept; null clears one. The key is write-only (shown as "set")."""

    stripe_customer_id: str | None = Field(None, max_length=255)
    stripe_api_key: str | None = Field(None, max_length=255)


class BillingExportIn(BaseModel):
    since: date
    until: date | None = None  # the day after the last; default and at most: today
    tenants: list[str] | None = None  # default: every tenant
    resend: bool = False


def billing_router(platform: "Platform", principal: Any) -> APIRouter:
    router = APIRouter(tags=["billing"])

    async def platform_admin(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if who.role != PLATFORM:
            raise HTTPException(403, "billing is the platform admin's")
        return who

    PlatformAdmin = Annotated[Principal, Depends(platform_admin)]

    async def tenant_store(tenant: str) -> Any:
        store = platform.require_store()
        if await store.tenant(tenant) is None:
            raise not_found()
        return store

    @router.get("/tenants/{tenant}/billing")
    async def get_billing(tenant: str, _who: PlatformAdmin) -> dict[str, Any]:
        return await billing_settings(await tenant_store(tenant), tenant)

    @router.put("/tenants/{tenant}/billing")
    async def put_billing(tenant: str, body: BillingIn, who: PlatformAdmin) -> dict[str, Any]:
        """The tenant's Stripe customer id (null: not billed) and a Stripe key of its own (write-only)."""
        store = await tenant_store(tenant)
        given = body.model_fields_set
        if body.stripe_api_key and not store.envelopes.enabled:
            raise HTTPException(503, "secrets cannot be stored: VOXLINE_SECRETS_KEY is not set on the server")
        try:
            return await set_billing(
                store, tenant, actor=who.actor, customer_id=body.stripe_customer_id,
                clear_customer="stripe_customer_id" in given and body.stripe_customer_id is None,
                api_key=body.stripe_api_key, clear_api_key="stripe_api_key" in given and body.stripe_api_key is None)
        except ValueError as e:
            raise HTTPException(422, str(e)) from None

    @router.post("/billing/export")
    async def billing_export(body: BillingExportIn, who: PlatformAdmin) -> dict[str, Any]:
        """Usage per tenant per UTC day to Stripe as meter events; a re-run never bills twice."""
        try:
            return await export_usage(platform.require_store(), since=body.since, until=body.until,
                                      tenants=body.tenants, resend=body.resend, actor=who.actor)
        except BillingError as e:
            raise HTTPException(503, str(e)) from None

    return router
