"""What a turn and a call cost: usage (audio seconds, tokens, characters) × a price table.

The table ships as ``voxline/data/prices.yaml`` (vendors' list prices); an operator
points ``VOXLINE_PRICES`` at a copy of their own. A provider/model the table does not
know costs nothing and is reported as unpriced, never guessed.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

PRICES_ENV = "VOXLINE_PRICES"

# usage key -> (price key, units per priced unit)
_RATES = {
    "stt_audio_secs": ("stt_per_minute", 60.0),
    "llm_input_tokens": ("llm_input_per_mtok", 1e6),
    "llm_cached_tokens": ("llm_cached_per_mtok", 1e6),
    "llm_output_tokens": ("llm_output_per_mtok", 1e6),
    "tts_characters": ("tts_per_mchar", 1e6),
    "realtime_audio_secs": ("realtime_per_minute", 60.0),
}
STAGE_OF = {"stt_audio_secs": "stt", "llm_input_tokens": "llm", "llm_cached_tokens": "llm",
            "llm_output_tokens": "llm", "tts_characters": "tts", "realtime_audio_secs": "realtime"}


@functools.lru_cache(maxsize=4)
def _load(path: str | None) -> dict[str, dict[str, dict[str, float]]]:
    text = Path(path).read_text() if path else (
        resources.files("voxline.data").joinpath("prices.yaml").read_text())
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError("price table: expected {provider: {model: {price: number}}}")
    return {str(p): {str(m): {str(k): float(v) for k, v in (prices or {}).items()}
                     for m, prices in (models or {}).items()} for p, models in data.items()}


def price_table() -> dict[str, dict[str, dict[str, float]]]:
    return _load(os.environ.get(PRICES_ENV) or None)


def prices_for(provider: str | None, model: str | None) -> dict[str, float] | None:
    models = price_table().get(provider or "")
    if models is None:
        return None
    return models.get(model or "") or models.get("*")


def cost(usage: Mapping[str, float], providers: Mapping[str, Any]) -> tuple[float, list[str]]:
    """USD for ``usage``, with ``providers`` = {stage: {"provider": .., "model": ..}};
    also the stages that had usage but no price."""
    total, unpriced = 0.0, []
    for key, amount in usage.items():
        rate = _RATES.get(key)
        stage = STAGE_OF.get(key)
        if rate is None or not amount:
            continue
        served = providers.get(stage or "") or {}
        prices = prices_for(served.get("provider"), served.get("model"))
        if prices is None or (rate[0] not in prices and prices):
            unpriced.append(f"{stage}:{served.get('provider')}/{served.get('model')}")
            continue
        total += amount / rate[1] * prices.get(rate[0], 0.0)
    return round(total, 6), sorted(set(unpriced))
