"""Small builders shared by the memory tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from voxline.memory import Store


def new_call_id() -> str:
    return f"call-{uuid.uuid4().hex[:12]}"


async def make_call(
    store: Store,
    tenant: str,
    caller: str = "+15551230001",
    turns: list[tuple[str, str]] | None = None,
) -> str:
    call_id = new_call_id()
    await store.start_call(
        tenant,
        call_id=call_id,
        channel="sim",
        direction="inbound",
        from_=caller,
        to="+15550000000",
        agent="front-desk",
        caller_key=caller,
        model_versions={"llm": "qwen2.5-0.5b", "prompt": "v3"},
    )
    for i, (role, text) in enumerate(turns or []):
        now = datetime.now(UTC)
        await store.add_turn(
            call_id,
            index=i,
            role=role,
            text=text,
            heard=None,
            started_at=now,
            ended_at=now,
            interrupted=False,
            latency_ms={"ttfb": 400 + 10 * i},
        )
    return call_id
