"""The admin API on a real Postgres: tenants, keys and roles, agents and versions, routes,
tool settings with secrets, calls, memory, usage, audit -- and tenant isolation: one
tenant's key cannot read, change or even detect another tenant's resources (404)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import sqlalchemy as sa

from voxline.memory.models import ApiKey, AuditLog, ToolConfig

from .conftest import ADMIN_KEY, PlatformServer

pytestmark = pytest.mark.services


def agent_spec(name: str, prompt: str = "You take bookings.") -> dict:
    return {"name": name, "prompt": prompt, "greeting": "Hello.",
            "tools": [{"name": "end_call", "handler": "builtin:end_call"},
                      {"name": "transfer_call", "handler": "builtin:transfer_call"}]}


async def seed_call(server: PlatformServer, tenant: str, *, agent: str, caller: str, cost: float = 0.01,
                    started: datetime | None = None) -> str:
    """A finished call with two turns, written through the store the server uses."""
    store = server.platform.store.store
    call_id = "CA" + uuid.uuid4().hex
    started = started or datetime.now(UTC) - timedelta(minutes=5)
    await store.start_call(tenant, call_id=call_id, channel="twilio", direction="inbound", from_=caller,
                           to="+15550001111", agent=agent, caller_key=caller, model_versions={"llm": {}},
                           started_at=started)
    await store.add_turn(call_id, index=0, role="user", text="A table for two, please.", heard=None,
                         started_at=started, ended_at=started, interrupted=False, latency_ms={})
    await store.add_turn(call_id, index=1, role="assistant", text="For what time?", heard="For what time?",
                         started_at=started, ended_at=started + timedelta(seconds=2), interrupted=False,
                         latency_ms={"voice_to_voice": 640.0, "stt": 120.0},
                         usage={"llm_input_tokens": 100, "llm_output_tokens": 20, "tts_characters": 14},
                         providers={"llm": {"provider": "openai", "model": "gpt-4o-mini"}}, cost_usd=cost)
    await store.end_call(call_id, status="completed", end_reason="caller_hung_up",
                         ended_at=started + timedelta(seconds=90))
    return call_id


async def seed_memory(server: PlatformServer, tenant: str, caller: str) -> None:
    store = server.platform.store.store
    async with store._tx() as conn:
        caller_id = await store._caller_id(conn, tenant, caller, create=True)
    await store.insert_memory(tenant, caller_id, kind="preference", text="Likes the window table",
                              embedding=np.ones(384, dtype=np.float32) / np.sqrt(384), importance=0.7,
                              source_call_id=None)


async def test_tenant_keys_cannot_see_or_touch_other_tenants(platform_server: PlatformServer) -> None:
    server = platform_server
    a, a_key = await server.new_tenant("acme")
    b, b_key = await server.new_tenant("bolt")
    caller = "+15557650001"
    async with server.client(a_key) as ca:
        assert (await ca.post(f"/api/v1/tenants/{a}/agents", json={"spec": agent_spec("alpha")})).status_code == 201
        r = await ca.put(f"/api/v1/tenants/{a}/routes/%2B15550009999", json={"agent": "alpha"})
        assert r.status_code == 200, r.text
        r = await ca.put(f"/api/v1/tenants/{a}/agents/alpha/tools/calendar",
                         json={"settings": {"calendar": "main"}, "secrets": {"api_key": "sk-live-SECRET-a"}})
        assert r.status_code == 200, r.text
        member = (await ca.post(f"/api/v1/tenants/{a}/keys", json={"name": "ops", "role": "member"})).json()
        hook = await ca.post(f"/api/v1/tenants/{a}/webhooks",
                             json={"url": "http://127.0.0.1:9/hook", "events": ["call.ended"]})
        assert hook.status_code == 201, hook.text
    call_id = await seed_call(server, a, agent="alpha", caller=caller)
    await seed_memory(server, a, caller)

    a_paths = {
        ("GET", f"/api/v1/tenants/{a}"), ("GET", f"/api/v1/tenants/{a}/keys"),
        ("DELETE", f"/api/v1/tenants/{a}/keys/{member['id']}"), ("GET", f"/api/v1/tenants/{a}/agents"),
        ("GET", f"/api/v1/tenants/{a}/agents/alpha"), ("GET", f"/api/v1/tenants/{a}/agents/alpha/versions"),
        ("GET", f"/api/v1/tenants/{a}/agents/alpha/versions/1"), ("DELETE", f"/api/v1/tenants/{a}/agents/alpha"),
        ("GET", f"/api/v1/tenants/{a}/agents/alpha/tools"), ("GET", f"/api/v1/tenants/{a}/agents/alpha/tools/calendar"),
        ("GET", f"/api/v1/tenants/{a}/routes"), ("DELETE", f"/api/v1/tenants/{a}/routes/%2B15550009999"),
        ("GET", f"/api/v1/tenants/{a}/calls"), ("GET", f"/api/v1/tenants/{a}/calls/{call_id}"),
        ("GET", f"/api/v1/tenants/{a}/calls/{call_id}/recording"), ("GET", f"/api/v1/tenants/{a}/live"),
        ("GET", f"/api/v1/tenants/{a}/callers/{caller}/memories"), ("DELETE", f"/api/v1/tenants/{a}/callers/{caller}"),
        ("GET", f"/api/v1/tenants/{a}/usage"), ("GET", f"/api/v1/tenants/{a}/audit"),
        ("GET", f"/api/v1/tenants/{a}/webhooks"), ("GET", f"/api/v1/tenants/{a}/webhook-deliveries"),
        ("DELETE", f"/api/v1/tenants/{a}/webhooks/{hook.json()['id']}"),
    }
    bodies = {
        ("POST", f"/api/v1/tenants/{a}/agents"): {"spec": agent_spec("alpha", "Hijacked.")},
        ("POST", f"/api/v1/tenants/{a}/agents/alpha/activate"): {"version": 1},
        ("PUT", f"/api/v1/tenants/{a}/agents/alpha/tools/calendar"): {"functions": {"book": False}},
        ("PUT", f"/api/v1/tenants/{a}/routes/%2B15550009999"): {"agent": "alpha"},
        ("POST", f"/api/v1/tenants/{a}/keys"): {"name": "x", "role": "admin"},
        ("POST", f"/api/v1/tenants/{a}/webhooks"): {"url": "http://127.0.0.1:9/x", "events": ["call.ended"]},
    }
    ghost = f"ghost-{uuid.uuid4().hex[:8]}"  # a tenant that does not exist
    async with server.client(b_key) as cb:
        for method, path in sorted(a_paths | set(bodies)):
            body = bodies.get((method, path))
            theirs = await cb.request(method, path, json=body)
            nobody = await cb.request(method, path.replace(f"/tenants/{a}", f"/tenants/{ghost}"), json=body)
            assert theirs.status_code == 404, (method, path, theirs.status_code, theirs.text)
            # Not even the answer tells another tenant apart from no tenant at all.
            assert (theirs.status_code, theirs.json()) == (nobody.status_code, nobody.json()), (method, path)
        # B's own paths with A's ids: A's call, agent, key, webhook are unknown here.
        assert (await cb.get(f"/api/v1/tenants/{b}/calls/{call_id}")).status_code == 404
        assert (await cb.get(f"/api/v1/tenants/{b}/agents/alpha")).status_code == 404
        assert (await cb.delete(f"/api/v1/tenants/{b}/keys/{member['id']}")).status_code == 404
        assert (await cb.delete(f"/api/v1/tenants/{b}/webhooks/{hook.json()['id']}")).status_code == 404
        assert (await cb.get(f"/api/v1/tenants/{b}/calls")).json()["calls"] == []
        assert (await cb.get(f"/api/v1/tenants/{b}/callers/{caller}/memories")).json()["memories"] == []
        erased = (await cb.delete(f"/api/v1/tenants/{b}/callers/{caller}")).json()["erased"]
        assert set(erased.values()) == {0}
        assert [t["id"] for t in (await cb.get("/api/v1/tenants")).json()["tenants"]] == [b]
        # Routing a number A owns is refused without naming A.
        r = await cb.post(f"/api/v1/tenants/{b}/agents", json={"spec": agent_spec("beta")})
        assert r.status_code == 201
        r = await cb.put(f"/api/v1/tenants/{b}/routes/%2B15550009999", json={"agent": "beta"})
        assert r.status_code == 409 and a not in r.text
    # Nothing of A changed.
    async with server.client(a_key) as ca:
        agent = (await ca.get(f"/api/v1/tenants/{a}/agents/alpha")).json()
        assert agent["version"] == 1 and agent["spec"]["prompt"] == "You take bookings."
        assert (await ca.get(f"/api/v1/tenants/{a}/agents/alpha/tools/calendar")).json()["disabled_functions"] == []
        assert [k["id"] for k in (await ca.get(f"/api/v1/tenants/{a}/keys")).json()["keys"] if k["revoked_at"]] == []
        assert (await ca.get(f"/api/v1/tenants/{a}/calls/{call_id}")).status_code == 200
        memories = (await ca.get(f"/api/v1/tenants/{a}/callers/{caller}/memories")).json()["memories"]
        assert [m["text"] for m in memories] == ["Likes the window table"]
        assert (await ca.get(f"/api/v1/tenants/{a}/routes")).json()["routes"][0]["agent"] == "alpha"
        assert len((await ca.get(f"/api/v1/tenants/{a}/webhooks")).json()["webhooks"]) == 1


async def test_keys_roles_hashing_and_revocation(platform_server: PlatformServer) -> None:
    server = platform_server
    tenant, admin = await server.new_tenant("roles")
    async with server.client(admin) as c:
        made = {}
        for role in ("member", "readonly"):
            r = await c.post(f"/api/v1/tenants/{tenant}/keys", json={"name": role, "role": role})
            assert r.status_code == 201 and r.json()["token"].startswith("vxk_")
            made[role] = r.json()
        listed = (await c.get(f"/api/v1/tenants/{tenant}/keys")).json()["keys"]
        assert {k["role"] for k in listed} == {"admin", "member", "readonly"}
        assert all("token" not in k and "secret_sha256" not in k for k in listed)  # never shown again
    async with server.platform.store._tx() as conn:
        rows = (await conn.execute(sa.select(ApiKey.secret_sha256).where(ApiKey.tenant_id == tenant))).all()
    for key in made.values():
        secret = key["token"].split("_")[2]
        assert all(secret not in r.secret_sha256 for r in rows)  # hashed at rest
    async with server.client(made["readonly"]["token"]) as ro:
        assert (await ro.get(f"/api/v1/tenants/{tenant}/calls")).status_code == 200
        assert (await ro.post(f"/api/v1/tenants/{tenant}/agents", json={"spec": agent_spec("x")})).status_code == 403
        assert (await ro.get(f"/api/v1/tenants/{tenant}/callers/+15550000000/memories")).status_code == 403
    async with server.client(made["member"]["token"]) as m:
        assert (await m.post(f"/api/v1/tenants/{tenant}/agents", json={"spec": agent_spec("x")})).status_code == 201
        assert (await m.post(f"/api/v1/tenants/{tenant}/keys", json={"name": "n", "role": "admin"})).status_code == 403
        r = await m.put(f"/api/v1/tenants/{tenant}/agents/x/tools/crm", json={"secrets": {"token": "t"}})
        assert r.status_code == 403
        assert (await m.post("/api/v1/tenants", json={"id": "evil"})).status_code == 403
    async with server.client(admin) as c:
        assert (await c.delete(f"/api/v1/tenants/{tenant}/keys/{made['member']['id']}")).status_code == 204
    async with server.client(made["member"]["token"]) as m:
        assert (await m.get(f"/api/v1/tenants/{tenant}/calls")).status_code == 401
    async with server.client("vxk_nope_nope") as bad, server.client(None) as anon:
        assert (await bad.get(f"/api/v1/tenants/{tenant}/calls")).status_code == 401
        assert (await anon.get("/api/v1/tenants")).status_code == 401
    async with server.client(admin) as c:
        actions = [e["action"] for e in (await c.get(f"/api/v1/tenants/{tenant}/audit")).json()["entries"]]
    assert actions.count("key.create") == 3 and "key.revoke" in actions and "agent.push" in actions


async def test_agent_versions_rollback_and_the_host_serves_the_active_one(platform_server: PlatformServer) -> None:
    server = platform_server
    tenant, key = await server.new_tenant("versions")
    async with server.client(key) as c:
        first = await c.post(f"/api/v1/tenants/{tenant}/agents", json={"spec": agent_spec("concierge", "One.")})
        second = await c.post(f"/api/v1/tenants/{tenant}/agents",
                              json={"spec": agent_spec("concierge", "Two."), "note": "friendlier"})
        same = await c.post(f"/api/v1/tenants/{tenant}/agents", json={"spec": agent_spec("concierge", "Two.")})
        assert [r.json()["version"] for r in (first, second, same)] == [1, 2, 2]
        assert same.json()["changed"] is False
        bad = await c.post(f"/api/v1/tenants/{tenant}/agents", json={"spec": {"name": "Bad Name", "prompt": 3}})
        assert bad.status_code == 422 and {p["field"] for p in bad.json()["problems"]} >= {"name"}
        assert server.host.agents["concierge"].system_prompt == "Two."
        assert server.host.agents["concierge"].memory.tenant == tenant  # runs as its tenant
        versions = (await c.get(f"/api/v1/tenants/{tenant}/agents/concierge/versions")).json()["versions"]
        assert [(v["version"], v["active"], v["note"]) for v in versions] == [(2, True, "friendlier"), (1, False, None)]
        r = await c.post(f"/api/v1/tenants/{tenant}/agents/concierge/activate", json={"version": 1})
        assert r.status_code == 200
        assert server.host.agents["concierge"].system_prompt == "One."
        assert (await c.get(f"/api/v1/tenants/{tenant}/agents/concierge")).json()["version"] == 1
        assert (await c.post(f"/api/v1/tenants/{tenant}/agents/concierge/activate",
                             json={"version": 9})).status_code == 404
        # Switching a function off removes it from the agent the host serves.
        r = await c.put(f"/api/v1/tenants/{tenant}/agents/concierge/tools/call_control",
                        json={"functions": {"transfer_call": False}})
        assert r.status_code == 200 and r.json()["disabled_functions"] == ["transfer_call"]
        assert [t.name for t in server.host.agents["concierge"].tools] == ["end_call"]
        r = await c.put(f"/api/v1/tenants/{tenant}/agents/concierge/tools/call_control",
                        json={"functions": {"transfer_call": True}})
        assert [t.name for t in server.host.agents["concierge"].tools] == ["end_call", "transfer_call"]
        entries = (await c.get(f"/api/v1/tenants/{tenant}/audit")).json()["entries"]
    pushes = [(e["action"], e["detail"].get("version")) for e in entries if e["action"].startswith("agent.")]
    assert pushes == [("agent.activate", 1), ("agent.push", 2), ("agent.push", 1)]


async def test_push_dir_stores_each_agent_as_a_version(platform_server: PlatformServer, tmp_path,
                                                       postgres_url: str) -> None:
    import asyncio

    import yaml

    from voxline.api.agents import push_dir

    tenant, _key = await platform_server.new_tenant("cli")
    folder = tmp_path / "push"
    for name in ("front", "back"):
        (folder / name).mkdir(parents=True)
        (folder / name / "agent.yaml").write_text(yaml.safe_dump(agent_spec(name)))
    first = await asyncio.to_thread(push_dir, folder, tenant=tenant, database_url=postgres_url)
    again = await asyncio.to_thread(push_dir, folder, tenant=tenant, database_url=postgres_url)
    assert sorted((r["name"], r["version"], r["changed"]) for r in first) == [("back", 1, True), ("front", 1, True)]
    assert all(not r["changed"] for r in again)


async def test_tool_secrets_are_write_only_encrypted_and_never_logged(platform_server: PlatformServer,
                                                                      caplog) -> None:
    server = platform_server
    tenant, key = await server.new_tenant("secrets")
    secret = "sk-live-" + uuid.uuid4().hex
    caplog.set_level(logging.DEBUG)
    async with server.client(key) as c:
        await c.post(f"/api/v1/tenants/{tenant}/agents", json={"spec": agent_spec("desk")})
        r = await c.put(f"/api/v1/tenants/{tenant}/agents/desk/tools/crm",
                        json={"settings": {"base_url": "https://crm.example"}, "secrets": {"token": secret},
                              "functions": {"delete_contact": False}})
        assert r.status_code == 200
        shown = (await c.get(f"/api/v1/tenants/{tenant}/agents/desk/tools/crm")).json()
        listed = (await c.get(f"/api/v1/tenants/{tenant}/agents/desk/tools")).text
        audit = (await c.get(f"/api/v1/tenants/{tenant}/audit")).text
    assert shown["secrets"] == {"token": "set"} and shown["settings"] == {"base_url": "https://crm.example"}
    assert shown["disabled_functions"] == ["delete_contact"]
    assert secret not in r.text + str(shown) + listed + audit
    async with server.platform.store._tx() as conn:
        row = (await conn.execute(sa.select(ToolConfig.secrets).where(ToolConfig.tenant_id == tenant))).scalar()
        audit_rows = (await conn.execute(sa.select(AuditLog.detail).where(AuditLog.tenant_id == tenant))).all()
    assert row is not None and secret not in str(row)
    assert set(row) == {"v", "kid", "wrapped", "nonce", "ciphertext", "names"}
    assert secret not in str(audit_rows)
    assert secret not in caplog.text
    # The code that calls the tool can open it; removing it leaves none.
    assert await server.platform.store.tool_secrets(tenant, "desk", "crm") == {"token": secret}
    async with server.client(key) as c:
        r = await c.put(f"/api/v1/tenants/{tenant}/agents/desk/tools/crm", json={"secrets": {"token": None}})
    assert r.json()["secrets"] == {}
    assert await server.platform.store.tool_secrets(tenant, "desk", "crm") == {}


async def test_calls_search_detail_memory_forget_usage_and_audit(platform_server: PlatformServer) -> None:
    server = platform_server
    tenant, key = await server.new_tenant("calls")
    day1 = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0) - timedelta(days=2)
    c1 = await seed_call(server, tenant, agent="front", caller="+15557651111", cost=0.02, started=day1)
    c2 = await seed_call(server, tenant, agent="back", caller="+15557652222", cost=0.03,
                         started=day1 + timedelta(days=1))
    await seed_memory(server, tenant, "+15557651111")
    async with server.client(key) as c:
        everything = (await c.get(f"/api/v1/tenants/{tenant}/calls")).json()["calls"]
        assert [x["id"] for x in everything] == [c2, c1]
        by_agent = (await c.get(f"/api/v1/tenants/{tenant}/calls", params={"agent": "front"})).json()["calls"]
        by_caller = (await c.get(f"/api/v1/tenants/{tenant}/calls", params={"caller": "+15557652222"})).json()
        by_date = (await c.get(f"/api/v1/tenants/{tenant}/calls",
                               params={"since": (day1 + timedelta(hours=12)).isoformat()})).json()["calls"]
        by_outcome = (await c.get(f"/api/v1/tenants/{tenant}/calls", params={"outcome": "dropped"})).json()
        assert [x["id"] for x in by_agent] == [c1] and [x["id"] for x in by_caller["calls"]] == [c2]
        assert [x["id"] for x in by_date] == [c2] and by_outcome["calls"] == []
        detail = (await c.get(f"/api/v1/tenants/{tenant}/calls/{c1}")).json()
        assert [t["role"] for t in detail["turns"]] == ["user", "assistant"]
        assert detail["turns"][1]["heard"] == "For what time?" and detail["turns"][1]["providers"]["llm"]
        assert detail["cost_usd"] == pytest.approx(0.02) and detail["latency"]["voice_to_voice"]["p50"] == 640.0
        memories = (await c.get(f"/api/v1/tenants/{tenant}/callers/+15557651111/memories")).json()
        assert [m["kind"] for m in memories["memories"]] == ["preference"]
        forgot = (await c.delete(f"/api/v1/tenants/{tenant}/callers/+15557651111")).json()
        assert forgot["erased"]["memories"] == 1 and forgot["erased"]["turns"] == 2
        after = (await c.get(f"/api/v1/tenants/{tenant}/calls/{c1}")).json()
        assert after["turns"] == [] and after["from"] is None
        usage = (await c.get(f"/api/v1/tenants/{tenant}/usage",
                             params={"since": (day1 - timedelta(days=1)).isoformat()})).json()["days"]
        assert [(d["calls"], d["minutes"], d["cost_usd"]) for d in usage] == [(1, 1.5, 0.02), (1, 1.5, 0.03)]
        assert usage[0]["usage"] == {"llm_input_tokens": 100, "llm_output_tokens": 20, "tts_characters": 14}
        audit = (await c.get(f"/api/v1/tenants/{tenant}/audit")).json()["entries"]
        assert {"memory.list", "caller.forget"} <= {e["action"] for e in audit}
        assert "+15557651111" not in str(audit)  # the caller appears as a fingerprint only
        assert (await c.get(f"/api/v1/tenants/{tenant}/usage", params={"since": "2020-01-01"})).status_code == 422


async def test_openapi_documents_the_api(platform_server: PlatformServer) -> None:
    async with platform_server.client(None) as c:
        doc = (await c.get("/api/v1/openapi.json")).json()
    paths = set(doc["paths"])
    assert {"/tenants", "/tenants/{tenant}/agents", "/tenants/{tenant}/calls/{call_id}",
            "/tenants/{tenant}/agents/{name}/tools/{tool}", "/tenants/{tenant}/usage",
            "/tenants/{tenant}/audit", "/tenants/{tenant}/webhooks"} <= paths
    assert ADMIN_KEY not in str(doc)
