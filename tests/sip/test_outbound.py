"""Calls we place over SIP: SIPp as the called party (``-sn uas`` and scenarios) behind a
trunk on loopback; the agent runs on the answer, outcomes without an answer are recorded."""

from __future__ import annotations

import socket

from tests.phone.kit import AgentScript, fake_services, write_agents
from voxline.transports.sip.place import call_via_sip

from .kit import finish_sipp, free_udp_port, start_sipp_uas, wait_listening

SAID = "He was not an ill disposed young man."
CALLED = "+15550009999"


async def _dial(sip_rig, scenario: str, script: AgentScript | None = None, **config):
    port = free_udp_port()
    rig = await sip_rig(script, trunk=f"sip:127.0.0.1:{port}", **config)
    sipp = await start_sipp_uas(scenario, port, rig.workdir)
    assert rig.server.dialer is not None
    outcome = await rig.server.dialer.dial(agent="restaurant", to=CALLED, from_="+15550001111")
    return rig, outcome, await finish_sipp(sipp, rig.workdir, scenario)


async def test_called_party_answers_speaks_and_hangs_up(sip_rig) -> None:
    rig, outcome, run = await _dial(sip_rig, "uas_speech", AgentScript(transcripts=[SAID]))
    assert outcome.status == "completed" and run.returncode == 0, run.output
    record = await rig.only_call()
    assert (record.channel, record.direction, record.to, record.from_) == ("sip", "outbound", CALLED, "+15550001111")
    assert record.end_reason == "caller_hung_up"
    assert [(t.role, t.text) for t in record.turns] == [
        ("assistant", "Hello, thanks for calling."), ("user", SAID), ("assistant", "I can help with that.")]
    assert f"INVITE sip:{CALLED}@127.0.0.1:" in run.messages and "RTP/AVP 9 0 8 101" in run.messages
    assert (record.transport_stats or {})["media_in"] > 200  # the callee's speech, decoded as A-law


async def test_call_via_sip_to_sipp_uas(tmp_path, sipp_workdir) -> None:
    """What ``voxline call --via sip`` runs: its own call host and endpoint, SIPp ``-sn uas`` answering."""
    script = AgentScript()
    agents = write_agents(tmp_path / "agents", script, {"numbers": {"+15550001111": "restaurant"}})
    port = free_udp_port()
    sipp = await start_sipp_uas("uas", port, sipp_workdir)
    answer = await call_via_sip(CALLED, "restaurant", agents_dir=agents, from_="+15550001111",
                                bind="127.0.0.1:0", database_url=str(tmp_path / "v.db"),
                                services=fake_services(script), trunk=f"sip:127.0.0.1:{port}",
                                media_timeout_secs=1.5, rtp_ports=(31000, 31100))
    run = await finish_sipp(sipp, sipp_workdir, "uas")
    assert answer["status"] == "completed" and answer["sip_status"] == 200, answer
    assert run.returncode == 0 and run.successful == 1, run.output  # answered, then our BYE (a silent line)


def test_command_line_needs_a_trunk(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from voxline.cli import app

    for name in ("VOXLINE_SIP_TRUNK", "VOXLINE_SIP_REGISTER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", str(tmp_path / "v.db"))
    agents = write_agents(tmp_path / "agents", AgentScript(), {"numbers": {"+15550001111": "restaurant"}})
    result = CliRunner().invoke(app, ["call", CALLED, "--agent", "restaurant", "--via", "sip",
                                      "--agents", str(agents)])
    assert result.exit_code == 1 and "VOXLINE_SIP_TRUNK" in result.output


async def test_trunk_challenges_and_the_credentials_answer(sip_rig) -> None:
    port = free_udp_port()
    rig = await sip_rig(trunk=f"sip:alice:s3cret@127.0.0.1:{port}")
    sipp = await start_sipp_uas("uas_auth", port, rig.workdir)
    assert rig.server.dialer is not None
    outcome = await rig.server.dialer.dial(agent="restaurant", to=CALLED, from_="+15550001111")
    run = await finish_sipp(sipp, rig.workdir, "uas_auth")
    assert outcome.status == "completed" and run.returncode == 0, run.output
    assert "Authorization: Digest" in run.messages and "403 Forbidden" not in run.messages  # SIPp checked it
    assert run.messages.count("ACK sip:") == 2  # the 401 was ACKed, then the 200
    record = await rig.only_call()
    assert record.end_reason == "caller_hung_up" and record.direction == "outbound"


async def test_call_through_a_tcp_trunk(sip_rig) -> None:
    port = free_udp_port(socket.SOCK_STREAM)
    rig = await sip_rig(trunk=f"sip:127.0.0.1:{port};transport=tcp", media_timeout_secs=1.5)
    sipp = await start_sipp_uas("uas", port, rig.workdir, "-t", "t1")
    await wait_listening(port)
    assert rig.server.dialer is not None
    outcome = await rig.server.dialer.dial(agent="restaurant", to=CALLED, from_="+15550001111")
    run = await finish_sipp(sipp, rig.workdir, "uas")
    assert outcome.status == "completed" and run.returncode == 0 and run.successful == 1, run.output
    assert "INVITE sip:+15550009999@127.0.0.1:" in run.messages and ";transport=tcp" in run.messages
    assert "Via: SIP/2.0/TCP" in run.messages and rig.server.wire.stats.datagrams == 0


async def test_unanswered_call_is_cancelled(sip_rig) -> None:
    rig, outcome, run = await _dial(sip_rig, "uas_no_answer", ring_timeout_secs=1.0)
    assert outcome.status == "no-answer" and run.returncode == 0, run.output  # CANCEL sent, the 487 ACKed
    record = await rig.only_call()
    assert record.end_reason == "no-answer" and not rig.server.placed and not rig.server.ports.in_use


async def test_busy_line_is_recorded(sip_rig) -> None:
    rig, outcome, run = await _dial(sip_rig, "uas_busy")
    assert outcome.status == "busy" and outcome.sip_status == 486
    assert run.returncode == 0, run.output  # SIPp got our ACK for the 486
    record = await rig.only_call()
    assert record.end_reason == "busy" and record.direction == "outbound"
    assert not rig.server.placed and not rig.server.ports.in_use and not rig.host.calls
