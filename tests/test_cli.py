"""Every command answers --help; `voxline models` reports the shipped models."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from voxline.cli import app

COMMANDS = ["", "check", "models", "simulate", "demo", "serve", "call", "db", "db upgrade",
            "db sweep", "memory", "memory list", "memory forget"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command):
    result = CliRunner().invoke(app, [*command.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_models_lists_every_manifest_entry():
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0
    for name in ("whisper-base", "qwen2.5-coder-0.5b-instruct", "piper-en-us", "minilm-l6-v2"):
        assert name in result.output
