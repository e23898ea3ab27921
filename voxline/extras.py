"""Guarded imports for optional extras: a missing extra fails with a message naming it."""

from __future__ import annotations

import importlib
from types import ModuleType

from voxline.errors import MissingExtraError


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise MissingExtraError naming ``pip install 'voxline[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(
            f"{module!r} is not installed; install it with: pip install 'voxline[{extra}]'"
        ) from e
