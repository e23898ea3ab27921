"""`voxline check` on provider lists: every block of every chain is validated (provider,
extra, key, base URL, voice, options, retry settings) without calling any vendor."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from voxline.cli import app

pytest.importorskip("openai", reason="needs the openai extra")


def check(tmp_path, text: str):
    (tmp_path / "agent.yaml").write_text(text)
    started = time.monotonic()
    result = CliRunner().invoke(app, ["check", str(tmp_path / "agent.yaml")])
    return result, time.monotonic() - started


def test_every_block_of_each_chain_is_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk")
    for name in ("ANTHROPIC_API_KEY", "DEEPGRAM_API_KEY", "ELEVENLABS_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    result, took = check(tmp_path, """
name: a
prompt: p
stt: [{provider: openai}, {provider: deepgram}]
llm:
  - {provider: openai, base_url: "http://127.0.0.1:9/v1"}   # nothing listens there: never called
  - {provider: anthropic}
  - {provider: openai_compatible}
  - {provider: gemini}
tts:
  - {provider: elevenlabs, options: {stabilty: 0.5}}
  - {provider: openai, retry: {probe_interval_secs: 10, probe_max_interval_secs: 5}}
  - {provider: openai, retry: {attempts: 3}}
""")
    assert result.exit_code == 1
    out = result.output
    for expected in (
        "stt_fallbacks.0.provider: deepgram needs the environment variable DEEPGRAM_API_KEY",
        "llm_fallbacks.0.provider: anthropic needs the environment variable ANTHROPIC_API_KEY",
        "llm_fallbacks.1.base_url: openai_compatible needs base_url",
        "llm_fallbacks.2.provider: unknown llm provider 'gemini'",
        "tts.provider: elevenlabs needs the environment variable ELEVENLABS_API_KEY",
        "tts.voice: elevenlabs needs a voice",
        "tts.options.stabilty: elevenlabs takes no option 'stabilty'",
        "tts_fallbacks.0.retry.probe_max_interval_secs: is shorter than probe_interval_secs",
        "tts_fallbacks.1: the same provider as block 1 of the list",
    ):
        assert expected in out, out
    assert "llm.base_url" not in out
    assert took < 5  # validated, not called


def test_a_valid_chain_names_each_provider_in_order(tmp_path, monkeypatch):
    for name, value in (("OPENAI_API_KEY", "sk"), ("ANTHROPIC_API_KEY", "ak")):
        monkeypatch.setenv(name, value)
    result, _ = check(tmp_path, """
name: a
prompt: p
llm: [{provider: openai, model: gpt-4.1-mini}, {provider: anthropic}]
tts: [{provider: openai, voice: nova}, {provider: espeak}]
""")
    assert result.exit_code == 0, result.output
    assert "llm: openai -> gpt-4.1-mini" in result.output
    assert "llm: anthropic (fallback 1) -> service default" in result.output
    assert "tts: espeak (fallback 1) -> espeak-ng en-us" in result.output


def test_a_realtime_agent_is_checked_for_its_model_not_the_cascade(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result, _ = check(tmp_path, """
name: a
prompt: p
engine: realtime
realtime: {provider: openai, model: gpt-realtime, options: {voise: marin, transcription_model: whisper-1}}
stt: {provider: deepgram}
""")
    assert result.exit_code == 1
    assert "realtime.provider: openai needs the environment variable OPENAI_API_KEY" in result.output
    assert "realtime.options.voise: openai takes no option 'voise'" in result.output
    assert "transcription_model" not in result.output  # read by voxline's factory
    assert "DEEPGRAM" not in result.output  # the cascade's blocks are not used
    monkeypatch.setenv("OPENAI_API_KEY", "sk")
    result, _ = check(tmp_path, "name: a\nprompt: p\nengine: realtime\nrealtime: {model: gpt-realtime}\n")
    assert result.exit_code == 0, result.output
    assert "realtime: openai -> gpt-realtime" in result.output
