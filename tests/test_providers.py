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


@pytest.mark.models
def test_the_shared_smart_turn_session_predicts_as_pipecats_own():
    import numpy as np
    from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

    from voxline.audio import synthesize
    from voxline.integrations.providers.local.smart_turn import SharedSmartTurnAnalyzerV3

    speech = np.frombuffer(synthesize("I would like to book a table for two."), np.int16)
    audio = speech.astype(np.float32) / 32768.0
    ours, theirs = SharedSmartTurnAnalyzerV3(), LocalSmartTurnAnalyzerV3()
    for analyzer in (ours, theirs):
        analyzer.set_sample_rate(16000)
    assert ours._session is SharedSmartTurnAnalyzerV3()._session
    assert ours._predict_endpoint(audio) == pytest.approx(theirs._predict_endpoint(audio))
