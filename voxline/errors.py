"""voxline's exception hierarchy.

Vendor and library errors are translated at the boundary (``raise ... from e``) so
callers handle one family of errors and can ask each whether a retry may help.
"""

from __future__ import annotations

import re


class VoxlineError(Exception):
    """Base error. ``retryable`` says whether the same call may succeed later."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None):
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class MissingExtraError(VoxlineError, ImportError):
    """An optional dependency is not installed; the message names the extra."""


class SpecError(VoxlineError):
    """An agent spec or scenario is invalid. ``problems`` holds (field path, reason)."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        lines = "\n".join(f"  {path or '<root>'}: {reason}" for path, reason in problems)
        super().__init__(f"{len(problems)} problem(s):\n{lines}")


class ModelMissingError(VoxlineError):
    """A local model file is absent or its hash does not match the manifest."""


class MissingSecretError(VoxlineError):
    """An environment variable holding a secret or URL is unset."""


class ProviderError(VoxlineError):
    """A vendor or local provider failed. 408/429/5xx are retryable, other 4xx are not.

    ``kind`` says how: ``http`` (the vendor answered with an error status), ``connection``
    (it could not be reached or dropped the connection), ``timeout`` (no first byte in
    time), ``stall`` (the answer stopped coming mid-stream) or ``other``.
    """

    def __init__(self, message: str, *, retryable: bool | None = None, provider: str | None = None,
                 status: int | None = None, kind: str = "other"):
        super().__init__(message, retryable=retryable)
        self.provider = provider
        self.status = status
        self.kind = kind

    @classmethod
    def from_status(cls, status: int, message: str, *, provider: str | None = None) -> ProviderError:
        retryable = status in (408, 429) or status >= 500
        return cls(f"HTTP {status}: {message}", retryable=retryable, provider=provider,
                   status=status, kind="http")

    @property
    def reason(self) -> str:
        """A short label for records and logs: ``http 503``, ``timeout``, ``connection``."""
        return f"http {self.status}" if self.status is not None else self.kind


class ProviderTimeout(ProviderError):
    """No first byte within the block's ``attempt_timeout_secs``."""

    retryable = True

    def __init__(self, message: str, *, provider: str | None = None, kind: str = "timeout"):
        super().__init__(message, retryable=True, provider=provider, kind=kind)


class ProviderStalled(ProviderTimeout):
    """The answer stopped coming mid-stream for longer than ``stall_timeout_secs``."""

    def __init__(self, message: str, *, provider: str | None = None):
        super().__init__(message, provider=provider, kind="stall")


class ProviderUnreachable(ProviderError):
    """The provider could not be reached, or dropped the connection."""

    retryable = True

    def __init__(self, message: str, *, provider: str | None = None):
        super().__init__(message, retryable=True, provider=provider, kind="connection")


_STATUS_IN_TEXT = re.compile(r"(?:Error code|status(?: code)?|HTTP)[:= ]+\(?(\d{3})\b", re.IGNORECASE)
_CONNECTION_WORDS = ("connect", "refused", "unreachable", "reset by peer", "closed", "eof",
                     "broken pipe", "timed out", "timeout", "network")


def translate(error: BaseException | None, message: str = "", *, provider: str | None = None) -> ProviderError:
    """A vendor or library failure as a ProviderError (the boundary translation).

    Reads the HTTP status an SDK exception carries (``status_code``, ``response.status``),
    recognises connection failures by type, and falls back to the status or wording
    in the message (Pipecat reports some failures as text only). Unknown failures are
    retryable: a provider that fails in a way we cannot name may well recover.
    """
    if isinstance(error, ProviderError):
        return error
    text = message or (str(error) if error is not None else "")
    status = _status_of(error) if error is not None else None
    if status is None:
        match = _STATUS_IN_TEXT.search(text) or (_STATUS_IN_TEXT.search(str(error)) if error else None)
        status = int(match.group(1)) if match else None
    if status is not None and 400 <= status < 600:
        return ProviderError.from_status(status, text, provider=provider)
    if error is not None and _is_connection_error(error):
        return ProviderUnreachable(text or type(error).__name__, provider=provider)
    if isinstance(error, TimeoutError):
        return ProviderTimeout(text or "timed out", provider=provider)
    lowered = text.lower()
    if any(w in lowered for w in _CONNECTION_WORDS):
        return ProviderUnreachable(text, provider=provider)
    return ProviderError(text or type(error).__name__, retryable=True, provider=provider)


def _status_of(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    for value in (getattr(error, "status_code", None), getattr(error, "status", None),
                  getattr(response, "status_code", None), getattr(response, "status", None)):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _is_connection_error(error: BaseException) -> bool:
    if isinstance(error, ConnectionError | OSError):
        return True
    # SDK connection errors (openai/anthropic APIConnectionError, httpx.ConnectError,
    # websockets ConnectionClosed) are recognised by name: their packages are optional.
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(names & {"APIConnectionError", "APITimeoutError", "ConnectError", "ConnectTimeout",
                         "ReadTimeout", "RemoteProtocolError", "ConnectionClosed",
                         "ConnectionClosedError", "ClientConnectorError", "ServerDisconnectedError",
                         "ClientPayloadError", "InvalidHandshake"})


class ToolError(VoxlineError):
    """A tool failed, timed out, or was called with invalid arguments."""
