"""Provider wiring: optional extras, the espeak fallback, Smart Turn from local files."""

from __future__ import annotations

import pytest

from voxline.errors import MissingExtraError
from voxline.extras import require
from voxline.integrations.providers import local_factories, registry
from voxline.integrations.providers.local.espeak import EspeakTTSService
from voxline.pipelines.builder import turn_strategies
from voxline.spec import TTSBlock, parse_spec


def test_a_missing_extra_names_itself():
    with pytest.raises(MissingExtraError, match=r"pip install 'voxline\[deepgram\]'"):
        require("voxline_no_such_sdk", "deepgram")


def test_without_piper_the_agent_speaks_with_espeak(monkeypatch):
    real_require = local_factories.require

    def no_piper(module: str, extra: str):
        if module == "piper":
            raise MissingExtraError("piper is not installed")
        return real_require(module, extra)

    monkeypatch.setattr(local_factories, "require", no_piper)
    assert isinstance(registry.build_tts(TTSBlock(provider="piper")), EspeakTTSService)


def test_smart_turn_loads_from_the_files_pipecat_ships():
    spec = parse_spec({"name": "a", "prompt": "p", "turn": {"strategy": "smart_turn"}})
    strategies = turn_strategies(spec)
    assert type(strategies.stop[0]).__name__ == "TurnAnalyzerUserTurnStopStrategy"
