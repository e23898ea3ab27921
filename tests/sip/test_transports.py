"""SIP over TCP (on the UDP port) and TLS: a SIPp call over TCP, stream framing against a
hand-written peer, and a call over TLS with a certificate made here and verified by the
client."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import re
import ssl
import uuid
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from voxline.transports.sip import SipLimits

from .kit import NUMBER
from .peers import OFFER, SDP, StreamPeer, header, request, status


async def test_call_over_tcp(sip_rig) -> None:
    rig = await sip_rig()
    run = await rig.sipp("short_call", "-t", "t1")  # on the UDP port's number
    assert run.returncode == 0 and run.successful == 1, run.output
    record = await rig.only_call()
    assert record.end_reason == "caller_hung_up" and record.channel == "sip"
    assert record.status == "completed" and record.to == "+15550001111"
    assert record.caller_id is not None and record.owner is not None  # the host took the ringing row over
    # Our answers named the transport, and nothing went over UDP.
    assert f"<sip:127.0.0.1:{rig.port};transport=tcp>" in run.messages
    stats = rig.server.wire.stats
    assert stats.datagrams == 0 and stats.stream_messages >= 3 and not rig.server.dialogs  # INVITE, ACK, BYE


async def test_stream_framing(sip_rig) -> None:
    rig = await sip_rig()
    peer = await StreamPeer.connect(rig.port)
    try:
        # One message in three pieces; then two in one write: each answered, in order.
        whole = request("OPTIONS", peer.port, transport="TCP", call_id="split")
        for piece in (whole[:10], whole[10:60], whole[60:]):
            await peer.send(piece)
        assert header(await peer.next(), "Call-ID") == "split"
        await peer.send(request("OPTIONS", peer.port, transport="TCP", call_id="one")
                        + request("OPTIONS", peer.port, transport="TCP", call_id="two"))
        assert [header(await peer.next(), "Call-ID") for _ in range(2)] == ["one", "two"]
        # A body is read by its Content-Length, however it is cut: an INVITE to an unrouted number.
        invite = request("INVITE", peer.port, transport="TCP", body=OFFER, extra=SDP)
        await peer.send(invite[:-7])
        await peer.send(invite[-7:] + request("OPTIONS", peer.port, transport="TCP", call_id="after"))
        answers = [await peer.next() for _ in range(2)]
        assert [status(a) for a in answers] == [404, 200] and header(answers[-1], "Call-ID") == "after"
        # RFC 5626 keepalive: CRLFCRLF is answered with CRLF.
        await peer.send(b"\r\n\r\n")
        assert await asyncio.wait_for(peer.reader.readexactly(2), 2) == b"\r\n"
        # Without Content-Length the stream cannot be framed: the connection is closed.
        await peer.send(request("OPTIONS", peer.port, transport="TCP").replace(b"Content-Length: 0\r\n", b""))
        assert await peer.closed()
    finally:
        peer.close()
    # Oversized headers: closed as well; the endpoint keeps answering.
    big = await StreamPeer.connect(rig.port)
    await big.send(b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nX-Pad: " + b"a" * 70000 + b"\r\n")
    assert await big.closed()
    big.close()
    again = await StreamPeer.connect(rig.port)
    await again.send(request("OPTIONS", again.port, transport="TCP"))
    assert status(await again.next()) == 200
    again.close()
    assert rig.server.listeners[0].closed_unframeable == 2


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost / 127.0.0.1, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "sip.crt", folder / "sip.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_call_over_tls(sip_rig, tmp_path) -> None:
    cert, key = _certificate(tmp_path)
    rig = await sip_rig(tls_cert=str(cert), tls_key=str(key), tls_port=0)
    tls_addr = rig.server.tls_address
    assert tls_addr is not None and tls_addr[1] not in (0, rig.port)
    # Plain TCP to the TLS port is not SIP: the handshake fails, the connection is closed.
    plain = await StreamPeer.connect(tls_addr[1])
    await plain.send(request("OPTIONS", plain.port, transport="TCP"))
    assert await plain.closed()
    plain.close()

    client = ssl.create_default_context(cafile=str(cert))  # verifies the server's certificate
    peer = await StreamPeer.connect(tls_addr[1], tls=client)
    call_id, uri = uuid.uuid4().hex, f"sip:{NUMBER}@127.0.0.1"
    try:
        await peer.send(request("INVITE", peer.port, transport="TLS", uri=uri, call_id=call_id,
                                body=OFFER, extra=SDP))
        answers = [await peer.next(5) for _ in range(3)]
        assert [status(a) for a in answers] == [100, 180, 200]
        ok = answers[-1]
        assert header(ok, "Contact") == f"<sip:127.0.0.1:{tls_addr[1]};transport=tls>"
        tag = re.search(r";tag=([^;\s]+)", header(ok, "To") or "")
        assert tag is not None
        dialog = {"uri": uri, "call_id": call_id, "transport": "TLS", "tags": f";tag={tag.group(1)}"}
        await peer.send(request("ACK", peer.port, **dialog))
        await peer.send(request("BYE", peer.port, cseq=2, **dialog))
        assert status(await peer.next(5)) == 200
    finally:
        peer.close()
    record = await rig.only_call()
    assert record.end_reason == "caller_hung_up" and record.to == NUMBER
    stats = rig.server.wire.stats
    assert stats.datagrams == 0 and stats.stream_messages == 3  # INVITE, ACK, BYE: the checked intake


async def test_stream_bounds(sip_rig) -> None:
    limits = SipLimits(stream_message_secs=0.5, max_connections_per_source=2, stream_idle_secs=2.0)
    rig = await sip_rig(limits=limits)
    # A message that starts and never finishes: closed at the deadline, not held open.
    drip = await StreamPeer.connect(rig.port)
    await drip.send(b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1")
    assert await drip.closed(timeout=5)
    # A connection nothing uses is closed when idle.
    idle = await StreamPeer.connect(rig.port)
    assert await idle.closed(timeout=5)
    # Two connections per source; a third is refused at once.
    kept = [await StreamPeer.connect(rig.port) for _ in range(2)]
    for peer in kept:
        await peer.send(request("OPTIONS", peer.port, transport="TCP"))
        assert status(await peer.next()) == 200
    third = await StreamPeer.connect(rig.port)
    assert await third.closed(timeout=2)
    assert rig.server.listeners[0].refused == 1
    for peer in (drip, idle, third, *kept):
        peer.close()
