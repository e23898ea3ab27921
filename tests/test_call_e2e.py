"""A whole call on the real local models: Silero VAD, Whisper, llama.cpp, Piper.

The caller speaks in real time (a real human recording at the wrong rate and in
stereo, then synthesized speech), cuts the agent off, and finally falls silent until
the agent reprompts and hangs up. What the caller heard is transcribed back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voxline.pipelines.scenario import Expect, Scenario, Turn
from voxline.pipelines.simulate import Simulation
from voxline.spec import load_spec

EXAMPLE = Path(__file__).parents[1] / "examples" / "restaurant" / "agent.yaml"
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav")


@pytest.mark.models
async def test_a_call_on_local_models(tmp_path, monkeypatch):
    monkeypatch.setenv("RESTAURANT_BOOKINGS", str(tmp_path / "bookings.json"))
    # Real human speech, delivered as 44.1 kHz stereo with leading silence.
    speech, rate = sf.read(LIBRIVOX)
    padded = np.concatenate([np.zeros(rate // 2), speech])
    stereo = np.stack([padded, padded], axis=1)
    import soxr

    sf.write(tmp_path / "caller.wav", soxr.resample(stereo, rate, 44100), 44100)

    spec = load_spec(EXAMPLE)
    spec = spec.model_copy(update={"idle": spec.idle.model_copy(
        update={"reprompt_after_secs": 4.0, "max_reprompts": 1})})
    scenario = Scenario(agent=EXAMPLE, answer_timeout_secs=40, turns=[
        Turn(audio=tmp_path / "caller.wav"),
        Turn(say="Can you tell me about Luigi's Trattoria, please?"),
        Turn(barge_in="Wait, do you have a vegetarian restaurant?"),
        Turn(silence=6, expect=Expect(says_any=["still there"])),
        Turn(silence=8, expect=Expect(call_ended=True)),
    ])
    report = await Simulation(scenario, spec=spec).run()

    assert "luigi" in report.greeting_heard.lower()
    heard = set(report.turns[0].agent_heard.lower().replace("-", " ").strip(".").split())
    truth = "he was not an ill disposed young man".split()
    assert sum(w in heard for w in truth) >= 6, (heard, report.turns[0], report.failures)  # a word may slip
    assert report.turns[0].caller_heard  # the agent answered, audibly
    assert report.turns[1].interrupted, report.turns[1]
    assert report.turns[2].caller_heard
    for turn in report.turns[:3]:
        assert turn.latency_ms.get("voice_to_voice", 0) > 0
        assert {"stt", "llm_ttft"} <= set(turn.latency_ms)
    assert report.turns[3].agent_said.lower().startswith("are you still there")
    assert report.end_reason == "caller_silent"
    assert report.passed, report.failures
