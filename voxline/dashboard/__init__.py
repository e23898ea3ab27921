"""The tenant dashboard, server-rendered: ``/dashboard``."""

from __future__ import annotations

from typing import Any


def dashboard_router(platform: Any) -> Any:
    from voxline.dashboard.pages import dashboard_router as router

    return router(platform)


__all__ = ["dashboard_router"]
