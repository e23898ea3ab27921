"""Envelope encryption for tool secrets and webhook signing secrets.

Each value is encrypted with a fresh 256-bit data key (AES-GCM); the data key is
encrypted ("wrapped") with the master key from ``$VOXLINE_SECRETS_KEY`` (32 bytes,
base64). The database holds only the envelope: ``{"v": 1, "kid", "wrapped", "nonce",
"ciphertext"}``. Rotating the master key: set the new key and list the old ones in
``$VOXLINE_SECRETS_OLD_KEYS`` (comma-separated); envelopes name the key they were
wrapped with. Plaintext never leaves this module except to the code that uses it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

from voxline.errors import MissingSecretError, VoxlineError

KEY_ENV = "VOXLINE_SECRETS_KEY"
OLD_KEYS_ENV = "VOXLINE_SECRETS_OLD_KEYS"


class SecretError(VoxlineError):
    """An envelope could not be opened (wrong or missing master key, tampered data)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


def _parse_key(text: str) -> bytes:
    try:
        key = _unb64(text.strip())
    except ValueError:
        raise MissingSecretError(f"{KEY_ENV} must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)") from None
    if len(key) != 32:
        raise MissingSecretError(f"{KEY_ENV} must be 32 bytes in base64, not {len(key)} bytes")
    return key


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"voxline-kid" + key).hexdigest()[:12]


def new_master_key() -> str:
    """A fresh master key, as the environment variable wants it."""
    return _b64(os.urandom(32))


class Envelopes:
    """Seal and open values with the master key (and old keys, for reading)."""

    def __init__(self, key: str | None = None, old_keys: str | None = None) -> None:
        from voxline.extras import require

        require("cryptography", "platform")
        raw = key if key is not None else os.environ.get(KEY_ENV)
        self._current = _parse_key(raw) if raw else None
        old = old_keys if old_keys is not None else os.environ.get(OLD_KEYS_ENV, "")
        self._keys = {key_id(k): k for k in (_parse_key(x) for x in old.split(",") if x.strip())}
        if self._current is not None:
            self._keys[key_id(self._current)] = self._current

    @property
    def enabled(self) -> bool:
        return self._current is not None

    def seal(self, value: Any) -> dict[str, Any]:
        """An envelope for a JSON-able value."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if self._current is None:
            raise MissingSecretError(f"{KEY_ENV} is not set: secrets cannot be stored without a master key")
        data_key, nonce, wrap_nonce = os.urandom(32), os.urandom(12), os.urandom(12)
        kid = key_id(self._current)
        ciphertext = AESGCM(data_key).encrypt(nonce, json.dumps(value).encode(), kid.encode())
        wrapped = AESGCM(self._current).encrypt(wrap_nonce, data_key, kid.encode())
        return {"v": 1, "kid": kid, "wrapped": _b64(wrap_nonce + wrapped), "nonce": _b64(nonce),
                "ciphertext": _b64(ciphertext)}

    def open(self, envelope: dict[str, Any]) -> Any:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            kid = str(envelope["kid"])
            master = self._keys.get(kid)
            if master is None:
                raise SecretError(f"no master key {kid} (set {KEY_ENV} or {OLD_KEYS_ENV})")
            wrapped = _unb64(envelope["wrapped"])
            data_key = AESGCM(master).decrypt(wrapped[:12], wrapped[12:], kid.encode())
            plain = AESGCM(data_key).decrypt(_unb64(envelope["nonce"]), _unb64(envelope["ciphertext"]), kid.encode())
            return json.loads(plain)
        except SecretError:
            raise
        except (KeyError, ValueError, TypeError, InvalidTag) as e:
            raise SecretError(f"secret envelope cannot be opened: {type(e).__name__}") from None

    def __repr__(self) -> str:  # never shows key material
        return f"Envelopes(enabled={self.enabled}, keys={len(self._keys)})"
