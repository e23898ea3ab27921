"""Cost of a turn from its usage and the price table; an operator's own table wins."""

from __future__ import annotations

import pytest

from voxline import pricing


@pytest.fixture(autouse=True)
def fresh_table():
    pricing._load.cache_clear()
    yield
    pricing._load.cache_clear()


def test_cloud_turn_is_priced_per_stage() -> None:
    usage = {"stt_audio_secs": 30.0, "llm_input_tokens": 1_000_000, "llm_cached_tokens": 500_000,
             "llm_output_tokens": 100_000, "tts_characters": 10_000}
    providers = {"stt": {"provider": "deepgram", "model": "nova-3"},
                 "llm": {"provider": "openai", "model": "gpt-4.1-mini"},
                 "tts": {"provider": "elevenlabs", "model": None}}
    usd, unpriced = pricing.cost(usage, providers)
    expected = 0.5 * 0.0077 + 0.40 + 0.5 * 0.10 + 0.1 * 1.60 + 0.01 * 100.0
    assert usd == pytest.approx(expected, rel=1e-6) and unpriced == []


def test_local_models_cost_nothing_and_unknown_models_are_reported() -> None:
    usd, unpriced = pricing.cost({"llm_input_tokens": 5000, "stt_audio_secs": 4},
                                 {"llm": {"provider": "llama"}, "stt": {"provider": "whisper"}})
    assert usd == 0 and unpriced == []
    usd, unpriced = pricing.cost({"llm_output_tokens": 5000}, {"llm": {"provider": "openai", "model": "gpt-9"}})
    assert usd == 0 and unpriced == ["llm:openai/gpt-9"]


def test_operator_price_table(tmp_path, monkeypatch) -> None:
    table = tmp_path / "prices.yaml"
    table.write_text("openai:\n  gpt-9: {llm_output_per_mtok: 2.0}\n")
    monkeypatch.setenv(pricing.PRICES_ENV, str(table))
    usd, unpriced = pricing.cost({"llm_output_tokens": 500_000}, {"llm": {"provider": "openai", "model": "gpt-9"}})
    assert usd == pytest.approx(1.0) and unpriced == []
