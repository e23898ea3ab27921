"""Pure pieces: redaction, caller keys, policy, profile, extraction, embeddings, URLs."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from voxline.errors import ModelMissingError
from voxline.integrations.providers.local import manifest
from voxline.memory import CallerKey, Line, RetrievalProfile, WritePolicy, redact
from voxline.memory.db import resolve_url
from voxline.memory.embeddings import MODEL_NAME, LocalMiniLM, model_folder
from voxline.memory.extract import extractive_summary, parse_llm_answer, rule_facts
from voxline.memory.redact import luhn_ok


def test_redact() -> None:
    text = (
        "Card 4111 1111 1111 1111, order 1234 5678 9012 3456, mail a.b@x.org, "
        "call +1 (555) 123-4567, ssn 123-45-6789, booked for 2025-03-14."
    )
    out = redact(text)
    assert out.count("[CARD]") == 1  # the order number fails Luhn: not a card
    assert "[EMAIL]" in out and "[PHONE]" in out and "[SSN]" in out
    assert "2025-03-14" in out
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")


def test_caller_key() -> None:
    assert CallerKey.parse("+1 (555) 123-4567") == CallerKey("phone", "+15551234567")
    assert CallerKey.parse("web:user-9") == CallerKey("web", "user-9")
    assert CallerKey.parse("ext:crm-1") == CallerKey("external", "crm-1")
    assert CallerKey.parse("crm-1") == CallerKey("external", "crm-1")
    fp = CallerKey.parse("+15551234567").fingerprint()
    assert len(fp) == 16 and "555" not in fp


def test_write_policy() -> None:
    p = WritePolicy(deny_kinds=("contact",), deny_patterns=(r"\bpassword\b",))
    assert p.rejects("name", "The caller is Ann.") is None
    assert p.rejects("contact", "x") and p.rejects("weird", "x")
    assert p.rejects("fact", "Pays with 4111-1111-1111-1111") == "card number"
    assert p.rejects("problem", "Has diabetes") == "health detail"
    assert p.rejects("fact", "Her Password is hunter2") == "denied pattern"
    assert WritePolicy(enabled=False).rejects("name", "x") == "memory disabled"


def test_profile_score() -> None:
    p = RetrievalProfile(half_life_days=10)
    now = datetime.now(UTC)
    fresh = p.score(similarity=0.8, last=now, importance=0.5, now=now)
    old = p.score(similarity=0.8, last=now - timedelta(days=10), importance=0.5, now=now)
    assert old == pytest.approx(fresh * 0.5**0.5)
    assert p.score(similarity=0.8, last=now, importance=1.0, now=now) > fresh


def test_extraction_fallbacks() -> None:
    lines = [
        Line("user", "Hello, this is Ann Lee. The heater is broken again."),
        Line("assistant", "I'm sorry. We'll send a technician; I've booked Tuesday 9am."),
    ]
    kinds = {f.kind for f in rule_facts(lines)}
    assert {"name", "problem", "booking"} <= kinds
    assert extractive_summary(lines).startswith("Caller said: Hello")
    assert parse_llm_answer("no json here") is None
    assert parse_llm_answer('{"summary": "s", "facts": [{"text": "t"}]}') == (
        "s",
        [rule_facts.__globals__["Fact"]("fact", "t", 0.5)],
    )


def test_local_embedder_semantics(embedder: LocalMiniLM) -> None:
    v = embedder.embed_sync(
        ["My name is Alice", "The caller is called Alice", "The weather is sunny today"]
    )
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


def _corrupt(path: Path) -> None:
    with path.open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")


def test_embedder_refuses_tampered_weights(tmp_path: Path) -> None:
    """An explicitly given folder is checked against the central manifest's sha256."""
    good = manifest.resolve(MODEL_NAME)
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("model.onnx", "tokenizer.json"):
        shutil.copy(good / name, bad / name)
    _corrupt(bad / "tokenizer.json")
    with pytest.raises(ModelMissingError, match="sha256"):
        LocalMiniLM(bad)
    with pytest.raises(ModelMissingError, match="not found"):
        LocalMiniLM(tmp_path / "missing")


def test_tampered_models_dir_is_never_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A corrupted file in VOXLINE_MODELS_DIR fails verification and is re-assembled from the
    installed package, so the embedder only ever loads the pinned bytes."""
    good = manifest.resolve(MODEL_NAME) / "model.onnx"
    monkeypatch.setenv("VOXLINE_MODELS_DIR", str(tmp_path))
    folder = tmp_path / MODEL_NAME
    folder.mkdir()
    onnx = folder / "model.onnx"
    shutil.copy(good, onnx)  # a real file, not a link: the copy is what gets corrupted
    _corrupt(onnx)
    assert model_folder() == folder
    pinned = {f.name: f.sha256 for f in manifest.load_manifest()[MODEL_NAME].files}
    assert manifest.sha256(onnx) == pinned["model.onnx"]
    assert manifest.sha256(folder / "tokenizer.json") == pinned["tokenizer.json"]
    v = LocalMiniLM().embed_sync(["hello"])
    assert v.shape == (1, 384)


def test_resolve_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert resolve_url(None) == "sqlite+aiosqlite:///var/voxline.db"
    assert resolve_url("/tmp/x.db") == "sqlite+aiosqlite:////tmp/x.db"
    assert resolve_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h:5/db")
    assert resolve_url(None) == "postgresql+asyncpg://u@h:5/db"
