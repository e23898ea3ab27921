"""A voxline worker for subprocess tests and benchmarks: what ``voxline serve`` runs
(``create_app`` + ``mount_platform``, logging installed in the worker), with the fake
STT/LLM/TTS of tests/phone/kit instead of local models.

    python -m uvicorn tests.platform.worker_app:app --factory --port P ...

Environment: VOXLINE_AGENTS_DIR, DATABASE_URL, REDIS_URL, TWILIO_ACCOUNT_SID,
TWILIO_AUTH_TOKEN, TWILIO_API_BASE_URL, VOXLINE_DRAIN_SECS, and for tests
VOXLINE_TEST_SLOT_TTL (seconds a dead worker's calls stay claimed), VOXLINE_TEST_SWEEP
(seconds between sweeps of abandoned calls), VOXLINE_TEST_PLATFORM=0 (the platform off:
the benchmark's baseline).
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from tests.phone.kit import AgentScript, fake_services
from voxline import logsafe
from voxline.pipelines.limits import CallLimits
from voxline.server import create_app

# One long sentence: about nine seconds of speech streamed to every caller.
GREETING = ("Hello and thank you for calling the restaurant where we are open every day from nine in the "
            "morning until eleven at night and where on weekends we also serve brunch from ten until three")


def app() -> FastAPI:
    logsafe.install(os.environ.get("VOXLINE_LOG_LEVEL", "WARNING"))
    script = AgentScript(greeting=GREETING, transcripts=["I would like a table."] * 20,
                         reply=lambda text: "Sure, for what time would you like the table?")
    limits = CallLimits.from_env(slot_ttl_secs=float(os.environ.get("VOXLINE_TEST_SLOT_TTL", "30")))
    application = create_app(Path(os.environ["VOXLINE_AGENTS_DIR"]), services=fake_services(script),
                             limits=limits, remember=False)
    if os.environ.get("VOXLINE_TEST_PLATFORM", "1") != "0":
        from voxline.api import mount_platform
        from voxline.observability.logs import install_from_env

        install_from_env()
        mount_platform(application, application.state.host,
                       sweep_every_secs=float(os.environ.get("VOXLINE_TEST_SWEEP", "15")))
    return application
