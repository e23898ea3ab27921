"""Failover chains: ``stt``, ``llm`` and ``tts`` as one block or a list tried in order.

All retries, timeouts, switches and probes of provider chains live in this package
(core.py), driven by each block's frozen :class:`~voxline.spec.RetrySettings`; the stage
modules say what a turn is for an STT, an LLM and a TTS and how it is redone.
"""

from __future__ import annotations

from voxline.integrations.providers.failover.core import FailoverFrame, FailoverService, Member, Probe
from voxline.integrations.providers.failover.llm import LLMFailover
from voxline.integrations.providers.failover.stt import STTFailover
from voxline.integrations.providers.failover.tts import TTSFailover

CHAINS: dict[str, type[FailoverService]] = {"stt": STTFailover, "llm": LLMFailover, "tts": TTSFailover}

__all__ = ["CHAINS", "FailoverFrame", "FailoverService", "LLMFailover", "Member", "Probe", "STTFailover",
           "TTSFailover"]
