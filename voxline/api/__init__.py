"""The platform: tenants, API keys, agents in the database, the admin API (``/api/v1``),
webhooks and graceful drain. ``mount_platform(app, host)`` puts it on a voxline app."""

from __future__ import annotations

from typing import Any


def mount_platform(app: Any, host: Any, **options: Any) -> Any:
    from voxline.api.platform import mount_platform as mount

    return mount(app, host, **options)


__all__ = ["mount_platform"]
