"""Dialog rules beyond a plain call: session timers (RFC 4028), 486 and 503 under caps and
draining, and digest credentials that cannot be replayed. SIPp or a hand-written UDP peer
is the far end; what the store holds is checked."""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid

import pytest

from voxline.pipelines.limits import CallLimits

from .kit import NUMBER
from .peers import OFFER, SDP, UdpPeer, header, request, status

ROUTED = f"sip:{NUMBER}@127.0.0.1"


async def test_session_timer_runs_out_and_the_call_is_dropped(sip_rig) -> None:
    rig = await sip_rig(session_min_se=2)
    run = await rig.sipp("session_expires")  # checks our 200 OK granted "3;refresher=uac"
    assert run.returncode == 0 and run.successful == 1, run.output  # and our BYE came
    record = await rig.only_call()
    assert record.end_reason == "dropped"
    assert re.search(r"^Require: timer", run.messages, re.M)


async def test_refreshed_session_lives_past_its_interval(sip_rig) -> None:
    rig = await sip_rig(session_min_se=2)
    # 4 s interval; an UPDATE, then a re-INVITE to hold (answered recvonly), 1.2 s apart; BYE after 3.6 s
    run = await rig.sipp("session_refreshed")
    assert run.returncode == 0 and run.successful == 1, run.output
    record = await rig.only_call()
    assert record.end_reason == "caller_hung_up"


async def test_too_short_a_session_interval_is_refused_with_our_min_se(sip_rig, peer: UdpPeer) -> None:
    rig = await sip_rig(session_min_se=90)
    asked = request("INVITE", peer.port, uri=ROUTED, body=OFFER,
                    extra=SDP + "Supported: timer\r\nSession-Expires: 30\r\n")
    answer = await peer.ask(asked, rig.port)
    assert status(answer) == 422 and header(answer, "Min-SE") == "90"
    assert await rig.calls() == []


@pytest.mark.parametrize("limits", [CallLimits(max_calls_per_tenant=1), CallLimits(max_calls_per_worker=1)],
                         ids=["tenant", "worker"])
async def test_busy_at_a_cap(sip_rig, limits: CallLimits) -> None:
    rig = await sip_rig()
    rig.host.limits = limits
    first = asyncio.create_task(rig.sipp("short_call"))
    for _ in range(400):  # until the first call holds the only place
        if rig.host.calls:
            break
        await asyncio.sleep(0.05)
    second = await rig.sipp("refused")
    assert second.returncode == 0 and second.statuses()[-1] == 486, second.messages
    assert (await first).successful == 1
    assert len(await rig.calls()) == 1  # the refused call left no record


async def test_draining_answers_503_with_retry_after(sip_rig) -> None:
    rig = await sip_rig(retry_after_secs=45)
    rig.host.draining = True
    run = await rig.sipp("refused")
    assert run.returncode == 0 and run.statuses()[-1] == 503, run.messages
    assert re.search(r"^Retry-After: 45\r?$", run.messages, re.M)
    assert await rig.calls() == []


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _answer(challenge: str, *, user: str, password: str, uri: str) -> str:
    params = dict(re.findall(r'(\w+)="?([^",]+)"?', challenge))
    ha1, ha2 = _md5(f"{user}:{params['realm']}:{password}"), _md5(f"INVITE:{uri}")
    response = _md5(f"{ha1}:{params['nonce']}:00000001:feed:auth:{ha2}")
    return (f'Digest username="{user}", realm="{params["realm"]}", nonce="{params["nonce"]}", uri="{uri}", '
            f'response="{response}", algorithm=MD5, cnonce="feed", qop=auth, nc=00000001')


async def _final(peer: UdpPeer) -> bytes | None:
    """The next final response (1xx skipped)."""
    while (message := await peer.next(5)) is not None:
        if (status(message) or 0) >= 200:
            return message
    return None


async def test_replayed_authorization_is_refused(sip_rig, peer: UdpPeer) -> None:
    rig = await sip_rig(allow="", users="alice:s3cret")
    challenge = await peer.ask(request("INVITE", peer.port, uri=ROUTED, body=OFFER, extra=SDP), rig.port)
    assert status(challenge) == 401
    authorization = _answer(header(challenge, "WWW-Authenticate") or "", user="alice", password="s3cret", uri=ROUTED)
    call_id = uuid.uuid4().hex
    peer.transport.sendto(request("INVITE", peer.port, uri=ROUTED, body=OFFER, call_id=call_id,
                                  extra=SDP + f"Authorization: {authorization}\r\n"), ("127.0.0.1", rig.port))
    ok = await _final(peer)
    assert status(ok) == 200
    dialog = {"uri": ROUTED, "call_id": call_id, "tags": ";tag=" + (header(ok, "To") or "").split(";tag=")[1]}
    peer.transport.sendto(request("ACK", peer.port, **dialog), ("127.0.0.1", rig.port))
    peer.transport.sendto(request("BYE", peer.port, cseq=2, **dialog), ("127.0.0.1", rig.port))
    assert status(await _final(peer)) == 200
    # The same Authorization on a new INVITE: challenged again (stale), no second call.
    replay = await peer.ask(request("INVITE", peer.port, uri=ROUTED, body=OFFER,
                                    extra=SDP + f"Authorization: {authorization}\r\n"), rig.port, timeout=2)
    assert status(replay) == 401 and "stale=true" in (header(replay, "WWW-Authenticate") or "")
    assert header(replay, "WWW-Authenticate") != header(challenge, "WWW-Authenticate")  # a fresh nonce
    await rig.host.settle()
    records = await rig.calls()
    assert len(records) == 1 and records[0].from_ == "sip:alice@voxline"
