"""Hostile or broken peers: garbage datagrams, oversized and truncated messages, unknown
methods, INVITE floods. Each gets a clear SIP error or silence; the endpoint keeps
answering real calls afterwards, and nothing a peer sent reaches the log verbatim."""

from __future__ import annotations

import asyncio
import logging

from voxline.transports.sip import SipLimits

from .peers import request, status


async def test_garbage_and_broken_messages(sip_rig, peer, caplog) -> None:
    rig = await sip_rig()
    port = rig.server.address[1]
    caplog.set_level(logging.DEBUG, logger="voxline")
    evil = "\x1b[31mEVIL\nFORGED LOG LINE"
    # Silence: not SIP at all, binary junk, keepalives, oversized, a start line only.
    for junk in [b"\x00\xff" * 50, b"hello world", b"\r\n\r\n", b"INVITE " + b"x" * 20000,
                 b"INVITE sip:a@b SIP/2.0\r\n", evil.encode(), bytes(range(256))]:
        assert await peer.ask(junk, port, timeout=0.2) is None
    # Clear errors for requests we can parse.
    assert status(await peer.ask(request("OPTIONS", peer.port), port)) == 200
    assert status(await peer.ask(request("FROBNICATE", peer.port), port)) == 501
    assert status(await peer.ask(request("INVITE", peer.port, body=b"v=0\r\n", length=500), port)) == 400
    assert status(await peer.ask(request("INVITE", peer.port, body=b"v=0\r\n", length=-3), port)) == 400
    missing = request("OPTIONS", peer.port).replace(b"Call-ID:", b"X-Nope:")
    assert status(await peer.ask(missing, port)) == 400
    bad_cseq = request("OPTIONS", peer.port).replace(b"CSeq: 1 OPTIONS", b"CSeq: banana")
    assert status(await peer.ask(bad_cseq, port)) == 400
    # An INVITE to a routed number with an unusable offer: 488; with garbage SDP: 400 or 488.
    routed = "sip:+15550001111@127.0.0.1"
    no_sdp = request("INVITE", peer.port, uri=routed)
    assert status(await peer.ask(no_sdp, port)) == 488
    video = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\n"
    assert status(await peer.ask(request("INVITE", peer.port, uri=routed, body=video,
                                         extra="Content-Type: application/sdp\r\n"), port)) == 488
    trash = request("INVITE", peer.port, uri=routed, body=b"\xff\xfe" + evil.encode(),
                    extra="Content-Type: application/sdp\r\n")
    assert status(await peer.ask(trash, port)) in (400, 488)
    # In-dialog requests for dialogs that do not exist.
    assert status(await peer.ask(request("BYE", peer.port), port)) == 481
    # A header value carrying terminal escapes and newlines never reaches a log line as is.
    forged = request("FROBNICATE", peer.port, extra=f"X-Evil: {evil[:4]}\r\n")
    assert status(await peer.ask(forged, port)) == 501
    assert all("\x1b" not in r.getMessage() and "EVIL" not in r.getMessage() for r in caplog.records)
    stats = rig.server.wire.stats
    assert stats.oversized == 1 and stats.malformed >= 5 and stats.unknown_methods == 2 and stats.errors == 0
    assert not rig.server.dialogs and await rig.calls() == []
    # Still answering real calls.
    run = await rig.sipp("short_call")
    assert run.returncode == 0 and run.successful == 1, run.output


async def test_invite_flood_is_bounded_per_source(sip_rig, peer) -> None:
    rig = await sip_rig(limits=SipLimits(invite_burst=5, invite_rate_per_sec=0.5))
    port = rig.server.address[1]
    answers = []
    for _ in range(30):
        peer.transport.sendto(request("INVITE", peer.port), ("127.0.0.1", port))
    await asyncio.sleep(0.5)
    while not peer.received.empty():
        answers.append(status(peer.received.get_nowait()))
    assert answers == [404] * 5  # the rest were dropped unanswered
    assert rig.server.guard.refused == 25


async def test_fifty_concurrent_calls(sip_rig) -> None:
    rig = await sip_rig()
    run = await rig.sipp("short_call", "-l", "50", "-r", "50", calls=50, timeout=60)
    assert run.returncode == 0 and run.successful == 50, run.output
    await rig.host.settle()
    records = await rig.calls()
    assert len(records) == 50
    for record in records:
        closed = await rig.host.records.wait_closed(record.id, 20)
        assert closed is not None and closed.end_reason == "caller_hung_up", closed
    assert not rig.server.dialogs and not rig.server.ports.in_use and not rig.host.calls
