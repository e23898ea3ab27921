"""Smart Turn v3 with one ONNX session per process instead of one per call.

Pipecat's ``LocalSmartTurnAnalyzerV3`` opens the model (~8 MB, ~0.1 s) in its
constructor. The session holds no per-call state (each analyzer keeps its own audio
buffer) and onnxruntime sessions may be run from several threads, so every call's
analyzer shares the process's session (shared.smart_turn_session) and behaves as pipecat's does.
"""

from __future__ import annotations

from typing import Any

from pipecat.audio.turn.smart_turn.base_smart_turn import BaseSmartTurn
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.utils.env import env_truthy

from voxline.integrations.providers.local import shared


class SharedSmartTurnAnalyzerV3(LocalSmartTurnAnalyzerV3):
    def __init__(self, *, smart_turn_model_path: str | None = None, cpu_count: int = 1, **kwargs: Any):
        BaseSmartTurn.__init__(self, **kwargs)  # skip the model load
        self._log_data = env_truthy("PIPECAT_SMART_TURN_LOG_DATA", default=False)
        self._session = shared.smart_turn_session(smart_turn_model_path, cpu_count=cpu_count)
