from __future__ import annotations

from typing import Any

from fastapi import APIRouter


def dashboard_router(platform: Any) -> APIRouter:
    return APIRouter()
