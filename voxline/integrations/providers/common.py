"""What every vendor family's factories share: secrets, the fields a spec set, defaults."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from voxline.errors import MissingSecretError
from voxline.spec import ProviderBlock


def secret(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise MissingSecretError(f"environment variable {name} is not set")
    return value


def given(block: ProviderBlock, *names: str) -> dict[str, Any]:
    """The fields among ``names`` that the spec itself set (not pydantic defaults, not
    None), so each service keeps its own defaults for the rest: a spec default such
    as ``temperature: 0.2`` is a choice for the local model, not for every vendor."""
    return {n: getattr(block, n) for n in names
            if n in block.model_fields_set and getattr(block, n) is not None}


@cache
def _defaults(service_cls: type) -> Any:
    # Pipecat's defaults live in each constructor; a throwaway instance is the only
    # faithful place to read them. It opens no connection.
    return service_cls(api_key="unused")._settings


def default_of(service_cls: type, field: str = "model") -> str:
    """``service default (<what pipecat will use>)``, as ``voxline check`` prints it."""
    try:
        value = getattr(_defaults(service_cls), field, None)
    except Exception:  # a default we cannot read is still the service's default
        return "service default"
    return f"service default ({value})" if isinstance(value, str) and value else "service default"


def describe(block: ProviderBlock, service_cls: type, field: str = "model") -> str:
    value = getattr(block, field, None)
    return str(value) if value else default_of(service_cls, field)
