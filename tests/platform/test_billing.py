"""Usage-based billing: calls in a real store (SQLite; Postgres through the admin API) go
to a loopback fake of Stripe's Billing Meter Events API through the official ``stripe``
SDK. Right events and values, deterministic identifiers, no double billing on a re-run,
429/5xx retried, 4xx reported, tenants without a customer skipped, no secret in logs."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from tests.fakes.stripe_api import FakeStripe
from voxline.api.billing import BillingOptions, Meter, export_usage, identifier, set_billing
from voxline.api.secrets import Envelopes, new_master_key
from voxline.api.store import PlatformStore
from voxline.memory.store import open_store

from .conftest import ADMIN_KEY, PlatformServer

PLATFORM_KEY = "sk_test_platform_" + "P" * 24
TENANT_KEY = "sk_test_tenant_" + "T" * 24
MINUTES, COST = "voxline_call_minutes", "voxline_cost_cents"
TODAY = datetime.now(UTC).date()
DAY1, DAY2 = TODAY - timedelta(days=3), TODAY - timedelta(days=2)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[PlatformStore]:
    base = await open_store(str(tmp_path / "voxline.db"))
    yield PlatformStore(base, Envelopes(new_master_key(), ""))
    await base.close()


@pytest.fixture
async def stripe_fake() -> AsyncIterator[FakeStripe]:
    async with FakeStripe(PLATFORM_KEY, meters=(MINUTES, COST), customers=("cus_Acme1", "cus_Bolt2")) as fake:
        yield fake


def options(fake: FakeStripe, **kw: object) -> BillingOptions:
    values: dict = {"meters": (Meter("minutes", MINUTES), Meter("cost_cents", COST)), "api_key": PLATFORM_KEY,
                    "api_base": fake.url, "attempts": 4, "base_delay_secs": 0.01, "max_delay_secs": 0.02}
    return BillingOptions(**{**values, **kw})


async def seed_call(store: PlatformStore, tenant: str, day: date, *, at: time, secs: float, cost: float) -> None:
    calls = store.store
    started = datetime.combine(day, at, tzinfo=UTC)
    call_id = "CA" + uuid.uuid4().hex
    await calls.start_call(tenant, call_id=call_id, channel="twilio", direction="inbound", from_="+15557650001",
                           to="+15550001111", agent="front", caller_key="+15557650001", model_versions={},
                           started_at=started)
    await calls.add_turn(call_id, index=0, role="assistant", text="Hello.", heard="Hello.", started_at=started,
                         ended_at=started, interrupted=False, latency_ms={}, usage={"tts_characters": 6},
                         cost_usd=cost)
    await calls.end_call(call_id, status="completed", end_reason="caller_hung_up",
                         ended_at=started + timedelta(seconds=secs))


async def seed(store: PlatformStore) -> None:
    """acme: DAY1 90 s + 150 s ($0.012 + $0.020), DAY2 61 s ($0.005), and a call today;
    bolt: a call, no Stripe customer."""
    for tenant in ("acme", "bolt"):
        await store.create_tenant(tenant, tenant.title(), actor="test")
    await seed_call(store, "acme", DAY1, at=time(9), secs=90, cost=0.012)
    await seed_call(store, "acme", DAY1, at=time(23, 50), secs=150, cost=0.020)
    await seed_call(store, "acme", DAY2, at=time(12), secs=61, cost=0.005)
    await seed_call(store, "acme", TODAY, at=time(0), secs=30, cost=0.5)
    await seed_call(store, "bolt", DAY1, at=time(10), secs=600, cost=0.3)
    await set_billing(store, "acme", actor="test", customer_id="cus_Acme1")


def day_end(day: date) -> int:
    return int(datetime.combine(day, time(23, 59, 59), tzinfo=UTC).timestamp())


async def test_export_sends_one_event_per_tenant_day_and_meter(store: PlatformStore, stripe_fake: FakeStripe) -> None:
    await seed(store)
    report = await export_usage(store, since=DAY1 - timedelta(days=1), options=options(stripe_fake))

    expected = {  # minutes rounded up per day, cost in cents rounded half up
        identifier("acme", DAY1.isoformat(), MINUTES): (MINUTES, 4, day_end(DAY1)),
        identifier("acme", DAY1.isoformat(), COST): (COST, 3, day_end(DAY1)),
        identifier("acme", DAY2.isoformat(), MINUTES): (MINUTES, 2, day_end(DAY2)),
        identifier("acme", DAY2.isoformat(), COST): (COST, 1, day_end(DAY2)),
    }
    got = {i: (e.event_name, e.value, e.timestamp) for i, e in stripe_fake.events.items()}
    assert got == expected  # nothing of today (not over yet), nothing of bolt
    assert {e.customer for e in stripe_fake.events.values()} == {"cus_Acme1"}
    assert identifier("acme", DAY1.isoformat(), MINUTES) == f"voxline:acme:{DAY1.isoformat()}:{MINUTES}"

    assert report["ok"] and report["until"] == TODAY.isoformat() and report["counts"] == {"sent": 4}
    assert [(e["day"], e["event_name"], e["value"], e["status"]) for e in report["events"]] == [
        (DAY1.isoformat(), MINUTES, 4, "sent"), (DAY1.isoformat(), COST, 3, "sent"),
        (DAY2.isoformat(), MINUTES, 2, "sent"), (DAY2.isoformat(), COST, 1, "sent")]
    tenants = {t["tenant"]: t for t in report["tenants"]}
    assert tenants["acme"]["status"] == "exported"
    assert tenants["bolt"] == {"tenant": "bolt", "status": "skipped", "reason": "no Stripe customer id"}

    # The wire: form-encoded, the secret key as a bearer token, the identifier as Idempotency-Key.
    for request in stripe_fake.requests:
        assert request.headers["authorization"] == f"Bearer {PLATFORM_KEY}"
        assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
        assert request.headers["idempotency-key"] == request.body["identifier"]
        assert request.headers.get("stripe-version")
    # Accepted events are in the tenant's audit log, with their values.
    audit = await store.store.audit_log("acme", limit=20)
    assert sorted((a["target_id"], a["detail"]["value"]) for a in audit if a["action"] == "billing.meter_event") == \
        sorted((i, v[1]) for i, v in expected.items())


async def test_a_rerun_never_bills_twice(store: PlatformStore, stripe_fake: FakeStripe) -> None:
    await seed(store)
    opts = options(stripe_fake)
    first = await export_usage(store, since=DAY1, options=opts)
    billed = dict(stripe_fake.events)
    first_posts = stripe_fake.meter_posts()

    again = await export_usage(store, since=DAY1, options=opts)
    assert again["ok"] and again["counts"] == {"already_sent": 4}
    assert stripe_fake.meter_posts() == first_posts  # nothing went out

    resent = await export_usage(store, since=DAY1, options=opts, resend=True)
    assert resent["ok"] and resent["counts"] == {"sent": 4}
    posts = stripe_fake.meter_posts()[len(first_posts):]
    assert posts == first_posts  # the same identifiers, values and timestamps ...
    assert stripe_fake.events == billed  # ... and Stripe counted each once
    assert [e["identifier"] for e in resent["events"]] == [e["identifier"] for e in first["events"]]

    # A call of DAY2 ends late: the day's minutes grow, but what was sent stays sent.
    await seed_call(store, "acme", DAY2, at=time(20), secs=300, cost=0.0)
    changed = await export_usage(store, since=DAY2, until=DAY2 + timedelta(days=1), options=opts)
    minutes = next(e for e in changed["events"] if e["event_name"] == MINUTES)
    assert (minutes["status"], minutes["sent_value"], minutes["value"]) == ("changed", 2, 7)
    assert stripe_fake.events == billed


async def test_an_event_stripe_already_holds_counts_as_delivered(store: PlatformStore,
                                                               stripe_fake: FakeStripe) -> None:
    """The ledger row of an accepted event was lost (a crash): Stripe refuses the identifier
    as a duplicate, and that is a delivery, not an error."""
    await seed(store)
    opts = options(stripe_fake, meters=(Meter("minutes", MINUTES),))
    await export_usage(store, since=DAY1, until=DAY2, options=opts)
    async with store._tx() as conn:
        from voxline.memory.models import AuditLog

        await conn.execute(AuditLog.__table__.delete().where(AuditLog.action == "billing.meter_event"))
    stripe_fake.expire_idempotency_keys()  # and a day has passed
    report = await export_usage(store, since=DAY1, until=DAY2, options=opts)
    assert report["ok"] and report["counts"] == {"duplicate": 1}
    assert len(stripe_fake.events) == 1
    assert (await export_usage(store, since=DAY1, until=DAY2, options=opts))["counts"] == {"already_sent": 1}


async def test_429_and_5xx_are_retried_with_the_same_idempotency_key(store: PlatformStore,
                                                                     stripe_fake: FakeStripe) -> None:
    await seed(store)
    stripe_fake.fail_next(429, 503)
    opts = options(stripe_fake, meters=(Meter("minutes", MINUTES),))
    report = await export_usage(store, since=DAY1, until=DAY2, options=opts)
    assert report["ok"] and report["counts"] == {"sent": 1}
    keys = [r.headers["idempotency-key"] for r in stripe_fake.requests]
    assert keys == [identifier("acme", DAY1.isoformat(), MINUTES)] * 3
    assert [e.value for e in stripe_fake.events.values()] == [4]

    # Retries are bounded: Stripe down for longer fails the tenant, clearly, and sends nothing more.
    stripe_fake.requests.clear()
    stripe_fake.fail_next(500, 502, 503, 500)
    report = await export_usage(store, since=DAY2, options=options(stripe_fake))
    assert not report["ok"] and len(stripe_fake.requests) == 4
    assert [e["status"] for e in report["events"]] == ["failed", "pending"]
    acme = next(t for t in report["tenants"] if t["tenant"] == "acme")
    assert acme["status"] == "failed"
    assert acme["reason"] == "Stripe answered 500 (api_error): An unknown error occurred. (after 4 attempts)"

    # Nothing listening at all: the same, bounded, and said so.
    async with FakeStripe(PLATFORM_KEY) as gone:
        nowhere = gone.url
    report = await export_usage(store, since=DAY2, options=options(stripe_fake, api_base=nowhere))
    acme = next(t for t in report["tenants"] if t["tenant"] == "acme")
    assert acme["status"] == "failed" and acme["reason"].startswith("Stripe could not be reached: APIConnectionError")
    assert acme["reason"].endswith("(after 4 attempts)")


async def test_days_stripe_no_longer_takes_are_reported_not_sent(store: PlatformStore,
                                                                 stripe_fake: FakeStripe) -> None:
    await seed(store)
    old = TODAY - timedelta(days=40)
    await seed_call(store, "acme", old, at=time(9), secs=60, cost=0.0)
    report = await export_usage(store, since=old, until=old + timedelta(days=1), options=options(stripe_fake))
    assert [(e["day"], e["status"]) for e in report["events"]] == [(old.isoformat(), "too_old")]
    assert report["events"][0]["detail"] == "Stripe takes events of the past 35 days"
    assert stripe_fake.requests == []


async def test_a_4xx_is_reported_clearly_and_not_retried(store: PlatformStore, stripe_fake: FakeStripe) -> None:
    await seed(store)
    await store.create_tenant("cato", None, actor="test")
    await seed_call(store, "cato", DAY1, at=time(8), secs=120, cost=0.01)
    await set_billing(store, "cato", actor="test", customer_id="cus_Unknown9")
    await set_billing(store, "bolt", actor="test", customer_id="cus_Bolt2")
    report = await export_usage(store, since=DAY1, options=options(stripe_fake))

    tenants = {t["tenant"]: t for t in report["tenants"]}
    assert not report["ok"]
    assert tenants["cato"]["status"] == "failed"
    assert tenants["cato"]["reason"] == ("Stripe answered 400 (invalid_request_error/resource_missing): "
                                         "No such customer: 'cus_Unknown9'")
    cato = [e for e in report["events"] if e["tenant"] == "cato"]
    assert [e["status"] for e in cato] == ["failed", "pending"]
    assert sum(r.body["payload[stripe_customer_id]"] == "cus_Unknown9" for r in stripe_fake.requests) == 1
    # The other tenants are billed all the same.
    assert tenants["acme"]["status"] == tenants["bolt"]["status"] == "exported"
    assert {e.customer for e in stripe_fake.events.values()} == {"cus_Acme1", "cus_Bolt2"}


async def test_tenant_keys_are_used_and_no_secret_reaches_logs_or_reports(
        store: PlatformStore, caplog: pytest.LogCaptureFixture) -> None:
    """acme has a Stripe key of its own (sealed in the store); bolt uses the platform's,
    which this Stripe account refuses (401)."""
    await seed(store)
    await set_billing(store, "acme", actor="test", api_key=TENANT_KEY)
    await set_billing(store, "bolt", actor="test", customer_id="cus_Bolt2")
    caplog.set_level(logging.DEBUG)
    async with FakeStripe(TENANT_KEY, customers=("cus_Acme1", "cus_Bolt2")) as fake:
        fake.fail_next(429)
        report = await export_usage(store, since=DAY1, options=options(fake))
    tenants = {t["tenant"]: t for t in report["tenants"]}
    assert tenants["acme"]["status"] == "exported" and len(fake.events) == 4
    assert tenants["bolt"]["status"] == "failed"
    assert tenants["bolt"]["reason"].startswith("Stripe answered 401 (invalid_request_error): Invalid API Key")
    text = caplog.text + json.dumps(report) + json.dumps(await store.store.audit_log("acme", limit=100), default=str)
    assert "billing" in caplog.text  # the export did log
    for secret in (TENANT_KEY, PLATFORM_KEY):
        assert secret not in text
    assert (await store.tool_config("acme", "_tenant", "stripe"))["secrets"] == {"api_key": "set"}


async def test_cli_export(tmp_path: Path, store: PlatformStore, stripe_fake: FakeStripe) -> None:
    await seed(store)
    db = str(tmp_path / "voxline.db")
    env = {**os.environ, "STRIPE_API_KEY": PLATFORM_KEY, "STRIPE_API_BASE": stripe_fake.url,
           "VOXLINE_STRIPE_METER_COST": COST}
    env.pop("VOXLINE_STRIPE_METER_MINUTES", None)  # the default meter name
    voxline = str(Path(sys.executable).with_name("voxline"))

    async def run(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(voxline, "billing", *args, "--database-url", db, env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        return proc.returncode or 0, out.decode(), err.decode()

    code, out, err = await run("customer", "bolt", "cus_Bolt2")
    assert code == 0, err
    assert json.loads(out) == {"tenant": "bolt", "stripe_customer_id": "cus_Bolt2", "stripe_api_key": None}
    code, out, err = await run("export", "--since", DAY1.isoformat(), "--until", DAY2.isoformat())
    assert code == 0, err
    report = json.loads(out)
    assert report["counts"] == {"sent": 4}
    assert sorted((e.customer, e.event_name, e.value) for e in stripe_fake.events.values()) == [
        ("cus_Acme1", MINUTES, 4), ("cus_Acme1", COST, 3), ("cus_Bolt2", MINUTES, 10), ("cus_Bolt2", COST, 30)]
    assert PLATFORM_KEY not in out + err

    code, out, err = await run("export", "--since", "yesterday")
    assert code == 2 and "not a date" in err


@pytest.mark.services
async def test_admin_api_billing(platform_server: PlatformServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server = platform_server
    tenant, tenant_key = await server.new_tenant("acme")
    store = server.platform.store
    await seed_call(store, tenant, DAY1, at=time(9), secs=90, cost=0.012)
    async with FakeStripe(PLATFORM_KEY, customers=("cus_Acme1",)) as fake:
        monkeypatch.setenv("STRIPE_API_KEY", PLATFORM_KEY)
        monkeypatch.setenv("STRIPE_API_BASE", fake.url)
        monkeypatch.setenv("VOXLINE_STRIPE_METER_MINUTES", MINUTES)
        monkeypatch.delenv("VOXLINE_STRIPE_METER_COST", raising=False)
        async with server.client(tenant_key) as own:  # a tenant's own admin key cannot bill
            assert (await own.put(f"/api/v1/tenants/{tenant}/billing",
                                  json={"stripe_customer_id": "cus_Acme1"})).status_code == 403
            assert (await own.post("/api/v1/billing/export", json={"since": DAY1.isoformat()})).status_code == 403
        async with server.client(ADMIN_KEY) as admin:
            r = await admin.put(f"/api/v1/tenants/{tenant}/billing", json={"stripe_customer_id": "acme"})
            assert r.status_code == 422 and "cus_" in r.text
            r = await admin.put(f"/api/v1/tenants/{tenant}/billing", json={"stripe_customer_id": "cus_Acme1"})
            assert r.json() == {"stripe_customer_id": "cus_Acme1", "stripe_api_key": None}
            assert (await admin.get("/api/v1/tenants/ghost-0/billing")).status_code == 404
            r = await admin.post("/api/v1/billing/export", json={"since": DAY1.isoformat(), "tenants": [tenant]})
            assert r.status_code == 200, r.text
            assert r.json()["counts"] == {"sent": 1}
            r = await admin.post("/api/v1/billing/export", json={"since": DAY1.isoformat(), "tenants": [tenant]})
            assert r.json()["counts"] == {"already_sent": 1}
            audit = (await admin.get(f"/api/v1/tenants/{tenant}/audit")).json()["entries"]
    assert [(e.event_name, e.value, e.customer) for e in fake.events.values()] == [(MINUTES, 2, "cus_Acme1")]
    assert any(a["action"] == "billing.meter_event" and a["actor"] == "platform-admin" for a in audit)
