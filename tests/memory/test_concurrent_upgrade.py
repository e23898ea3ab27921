"""Workers that start together on a new SQLite file take turns to create the schema
(`voxline serve --workers 2` on a fresh machine): every one of them succeeds."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa


def test_four_processes_upgrade_a_new_sqlite_file_at_once(tmp_path: Path) -> None:
    db = tmp_path / "new" / "voxline.db"
    go = tmp_path / "go"
    # Each process imports first, then waits for the same signal: the upgrades start together.
    code = ("import sys, time, pathlib; from voxline.memory.migrate import upgrade\n"
            "pathlib.Path(sys.argv[3]).touch()\n"
            "while not pathlib.Path(sys.argv[2]).exists(): time.sleep(0.002)\n"
            "upgrade(sys.argv[1])")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(db), str(go), str(tmp_path / f"ready{i}")],
                              stderr=subprocess.PIPE, text=True) for i in range(4)]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(4)):  # all imported, all waiting
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.05)
    go.touch()
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    from voxline.memory.migrate import head_revision

    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
    engine.dispose()
