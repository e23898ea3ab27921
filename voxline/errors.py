"""voxline's exception hierarchy.

Vendor and library errors are translated at the boundary (``raise ... from e``) so
callers handle one family of errors and can ask each whether a retry may help.
"""

from __future__ import annotations


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
    """A vendor or local provider failed. 408/429/5xx are retryable, other 4xx are not."""

    @classmethod
    def from_status(cls, status: int, message: str) -> ProviderError:
        retryable = status in (408, 429) or status >= 500
        return cls(f"HTTP {status}: {message}", retryable=retryable)


class ToolError(VoxlineError):
    """A tool failed, timed out, or was called with invalid arguments."""
