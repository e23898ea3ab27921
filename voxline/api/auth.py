"""Who is asking: API keys and their roles.

- the platform admin: ``Authorization: Bearer $VOXLINE_ADMIN_KEY`` (every tenant);
- a tenant's keys (``vxk_<id>_<secret>``, hashed at rest), each with a role:
  ``admin`` (keys, secrets, webhooks, erasure, audit log), ``member`` (agents, routes,
  tool settings, callers' memories), ``readonly`` (reads calls, agents, usage).

A key used on another tenant's path gets the same 404 as a tenant that does not
exist: nothing tells one tenant whether another exists or what it holds.
"""

from __future__ import annotations

import hmac
import logging
import os
from dataclasses import dataclass

from fastapi import HTTPException, Request

from voxline.api.store import PlatformStore

log = logging.getLogger("voxline.api")

ADMIN_KEY_ENV = "VOXLINE_ADMIN_KEY"
PLATFORM = "platform"
RANK = {"readonly": 0, "member": 1, "admin": 2, PLATFORM: 3}


@dataclass(frozen=True)
class Principal:
    role: str
    tenant: str | None  # None for the platform admin
    key_id: str | None

    @property
    def actor(self) -> str:
        return "platform-admin" if self.role == PLATFORM else f"key:{self.key_id}"

    def can(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]


def not_found() -> HTTPException:
    return HTTPException(404, "not found")


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def identify(token: str | None, store: PlatformStore, admin_key: str | None) -> Principal | None:
    if not token or len(token) > 256:
        return None
    if admin_key and hmac.compare_digest(token.encode(), admin_key.encode()):
        return Principal(PLATFORM, None, None)
    info = await store.authenticate(token)
    return None if info is None else Principal(info.role, info.tenant, info.id)


def admin_key_from_env() -> str | None:
    key = os.environ.get(ADMIN_KEY_ENV) or None
    if key is not None and len(key) < 24:
        log.warning("- %s is shorter than 24 characters: the platform admin API is off", ADMIN_KEY_ENV)
        return None
    return key


async def scope(principal: Principal, tenant: str, store: PlatformStore, role: str) -> Principal:
    """``principal`` acting on ``tenant`` with at least ``role``: else 404 (another
    tenant, or none) or 403 (own tenant, too small a role)."""
    if principal.role != PLATFORM and principal.tenant != tenant:
        raise not_found()
    if principal.role == PLATFORM and await store.tenant(tenant) is None:
        raise not_found()
    if not principal.can(role):
        raise HTTPException(403, f"this needs the {role} role")
    return principal
