"""Fixtures of the web tests: the server's ERROR lines (Pipecat's loguru included)."""

from tests.phone.conftest import server_errors  # noqa: F401
