"""Several voxline worker processes behind a real load balancer (Debian's haproxy) on
127.0.0.1, sharing one Postgres and one Redis: for the drain and scale-out tests and
``benchmarks/scale_out.py``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from tests.phone.kit import AgentScript, agent_yaml

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "AC00000000000000000000000000000000"
TOKEN = "test-token"
NUMBER = "+15550001111"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_agents(root: Path, tenant: str) -> Path:
    spec = agent_yaml(AgentScript(phone={"voicemail": {"action": "hang_up"}}))
    spec["memory"] = {"tenant": tenant, "remember": False}
    spec["idle"] = {"reprompt_after_secs": 120, "max_reprompts": 0}
    (root / "restaurant").mkdir(parents=True, exist_ok=True)
    (root / "restaurant" / "agent.yaml").write_text(yaml.safe_dump(spec))
    (root / "routes.yaml").write_text(yaml.safe_dump({"numbers": {NUMBER: "restaurant"}}))
    return root


@dataclass
class Worker:
    port: int
    proc: subprocess.Popen
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


@dataclass
class Cluster:
    workdir: Path
    env: dict[str, str]
    workers: list[Worker] = field(default_factory=list)
    lb_port: int | None = None
    lb: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        assert self.lb_port is not None
        return f"http://127.0.0.1:{self.lb_port}"

    def start_worker(self, extra_env: dict[str, str] | None = None) -> Worker:
        port = free_port()
        log = self.workdir / f"worker-{port}.log"
        cmd = [sys.executable, "-m", "uvicorn", "tests.platform.worker_app:app", "--factory",
               "--host", "127.0.0.1", "--port", str(port), "--ws", "websockets",
               "--ws-per-message-deflate", "False", "--ws-max-size", "65536", "--log-level", "warning",
               "--no-server-header", "--lifespan", "on"]
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, cwd=ROOT, env={**self.env, **(extra_env or {})}, stdout=out,
                                    stderr=subprocess.STDOUT)
        worker = Worker(port, proc, log)
        self.workers.append(worker)
        return worker

    async def ready(self, worker: Worker, timeout: float = 60.0) -> None:
        async with httpx.AsyncClient(timeout=2) as client:
            for _ in range(int(timeout / 0.2)):
                if worker.proc.poll() is not None:
                    raise RuntimeError(f"worker exited {worker.proc.returncode}: {worker.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(worker.base + "/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise TimeoutError(f"worker on {worker.port} not ready: {worker.tail()}")

    def start_lb(self, check_path: str = "/readyz") -> None:
        haproxy = shutil.which("haproxy")
        if haproxy is None:
            raise RuntimeError("haproxy is not installed (make system-deps)")
        self.lb_port = free_port()
        servers = "\n".join(f"  server w{i} 127.0.0.1:{w.port} check inter 300ms fall 2 rise 1"
                            for i, w in enumerate(self.workers))
        config = self.workdir / "haproxy.cfg"
        config.write_text(f"""global
  maxconn 2000
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout tunnel 1h
frontend voxline
  bind 127.0.0.1:{self.lb_port}
  default_backend workers
backend workers
  balance roundrobin
  option httpchk GET {check_path}
  http-check expect status 200
{servers}
""")
        self.lb = subprocess.Popen([haproxy, "-f", str(config), "-db"], stdout=subprocess.DEVNULL,
                                   stderr=open(self.workdir / "haproxy.log", "wb"))

    async def lb_ready(self, timeout: float = 20.0) -> None:
        async with httpx.AsyncClient(timeout=2) as client:
            for _ in range(int(timeout / 0.1)):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.base + "/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise TimeoutError("haproxy is not forwarding")

    def stop(self) -> None:
        for proc in [w.proc for w in self.workers] + ([self.lb] if self.lb else []):
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 40
        for proc in [w.proc for w in self.workers] + ([self.lb] if self.lb else []):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def cluster(database_url: str, redis_url: str, rest_base: str, **env: str):
    workdir = Path(tempfile.mkdtemp(prefix="voxline-cluster-"))
    tenant = f"scale-{uuid.uuid4().hex[:8]}"
    agents = write_agents(workdir / "agents", tenant)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("VOXLINE_", "OTEL_", "PROMETHEUS_"))}
    base_env.update({"VOXLINE_AGENTS_DIR": str(agents), "DATABASE_URL": database_url, "REDIS_URL": redis_url,
                     "TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_API_BASE_URL": rest_base,
                     "VOXLINE_SECRET": "cluster-secret-" + uuid.uuid4().hex, "PYTHONPATH": str(ROOT),
                     "VOXLINE_ADMIN_KEY": "cluster-admin-key-" + uuid.uuid4().hex, **env})
    c = Cluster(workdir, base_env)
    c.env["VOXLINE_TEST_TENANT"] = tenant
    try:
        yield c
    finally:
        c.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def kill(worker: Worker) -> None:
    worker.proc.send_signal(signal.SIGKILL)
    worker.proc.wait(10)
