"""`voxline serve --sip` answers SIP on the real entry point: two workers, one UDP port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .kit import prepare_workdir, run_sipp

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.models
async def test_serve_answers_sip_with_two_workers(tmp_path) -> None:
    http, sip = _free_port(socket.SOCK_STREAM), _free_port(socket.SOCK_DGRAM)
    env = {**os.environ, "VOXLINE_SIP_ALLOW": "127.0.0.1/32", "DATABASE_URL": str(tmp_path / "v.db"),
           "TWILIO_ACCOUNT_SID": "", "TWILIO_AUTH_TOKEN": ""}
    log = (tmp_path / "serve.log").open("w")
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voxline.cli", "serve", "--agents", str(EXAMPLES), "--port", str(http),
        "--workers", "2", "--sip", f"127.0.0.1:{sip}", env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(240):  # both workers load their models first
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://127.0.0.1:{http}/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.5)
        await asyncio.sleep(2)  # the second worker, too
        workdir = prepare_workdir(tmp_path / "sipp")
        run = await run_sipp("short_call", sip, workdir, service="+15550100001")
        assert run.successful == 1, run.output[-2000:]
        assert 200 in run.statuses()
        unknown = await run_sipp("refused", sip, workdir, service="+15559999999")
        assert 404 in unknown.statuses(), unknown.messages[-2000:]
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 30)
        log.close()
    text = (tmp_path / "serve.log").read_text()
    assert "answered by another worker" in text, text[-3000:]
