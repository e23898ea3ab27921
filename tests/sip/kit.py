"""SIP test kit: SIPp as the far end on loopback, real recorded speech as G.711 RTP, and a
call host with a throwaway SQLite call store behind ``start_sip``."""

from __future__ import annotations

import asyncio
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SCENARIOS = Path(__file__).parent / "scenarios"
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
SIPP_PCAPS = Path("/usr/share/sip-tester")
NUMBER = "+15550001111"
CLIP = "sense_and_sensibility_01_austen_64kb-0880"
CLIP_TEXT = "he was not an ill disposed young man"


def write_speech(path: Path, *, law: str = "ULAW", clip: str = CLIP, lead_secs: float = 0.5,
                 tail_secs: float = 1.5) -> Path:
    """A LibriVox clip as an 8 kHz G.711 WAV for SIPp's ``rtp_stream``, padded with silence."""
    samples, rate = sf.read(LIBRIVOX / f"{clip}.wav", dtype="float32")
    audio = soxr.resample(samples, rate, 8000, quality="HQ")
    audio = np.concatenate([np.zeros(int(8000 * lead_secs), np.float32), audio,
                            np.zeros(int(8000 * tail_secs), np.float32)])
    sf.write(path, audio, 8000, subtype=law)
    return path


def write_speech_g722(path: Path, *, clip: str = CLIP, lead_secs: float = 0.5, tail_secs: float = 1.5) -> Path:
    """The clip at 16 kHz encoded to G.722 by FFmpeg (PyAV): raw payloads, 160 bytes per
    20 ms, as SIPp's ``rtp_stream`` sends them with payload type 9."""
    from voxline.transports.sip.codecs import G722Codec

    samples, rate = sf.read(LIBRIVOX / f"{clip}.wav", dtype="float32")
    audio = soxr.resample(samples, rate, 16000, quality="HQ")
    audio = np.concatenate([np.zeros(int(16000 * lead_secs), np.float32), audio,
                            np.zeros(int(16000 * tail_secs), np.float32)])
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    codec = G722Codec()
    path.write_bytes(b"".join(codec.encode(pcm[i:i + 640]) for i in range(0, len(pcm) - 639, 640)))
    return path


def prepare_workdir(workdir: Path) -> Path:
    """SIPp's working folder: the speech files and the RFC 2833 pcaps the scenarios name."""
    workdir.mkdir(parents=True, exist_ok=True)
    write_speech(workdir / "speech.wav", law="ULAW")
    write_speech(workdir / "speech_alaw.wav", law="ALAW")
    write_speech_g722(workdir / "speech.g722")
    for digit in ("1", "2"):
        shutil.copy(SIPP_PCAPS / f"dtmf_2833_{digit}.pcap", workdir)
    return workdir


@dataclass
class SippRun:
    returncode: int
    output: str
    messages: str  # SIPp's message trace (-trace_msg)

    @property
    def successful(self) -> int:
        m = re.search(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", self.output)
        return int(m.group(1)) if m else 0

    @property
    def failed(self) -> int:
        m = re.search(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", self.output)
        return int(m.group(1)) if m else 0

    def statuses(self) -> list[int]:
        """Status codes of every response SIPp received."""
        return [int(s) for s in re.findall(r"^SIP/2\.0 (\d{3})", self.messages, re.M)]


async def run_sipp(scenario: str, port: int, workdir: Path, *args: str, service: str = NUMBER,
                   calls: int = 1, timeout: float = 60.0) -> SippRun:
    """Run ``scenarios/<scenario>.xml`` against 127.0.0.1:``port`` until ``calls`` calls ended."""
    await asyncio.to_thread(_remove_traces, workdir, scenario)
    cmd = ["sipp", "-sf", str(SCENARIOS / f"{scenario}.xml"), f"127.0.0.1:{port}", "-s", service,
           "-i", "127.0.0.1", "-m", str(calls), "-nostdin", "-trace_msg", "-trace_err",
           "-timeout", f"{int(timeout)}s", "-timeout_error", "-recv_timeout", "30000", *args]
    proc = await asyncio.create_subprocess_exec(*cmd, cwd=workdir, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout + 10)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
    messages = await asyncio.to_thread(_read_traces, workdir, scenario)
    return SippRun(proc.returncode if proc.returncode is not None else -1, out.decode(errors="replace"), messages)


def _remove_traces(workdir: Path, scenario: str) -> None:
    for old in workdir.glob(f"{scenario}_*_messages.log"):
        old.unlink()


def _read_traces(workdir: Path, scenario: str) -> str:
    return "".join(p.read_text(errors="replace") for p in workdir.glob(f"{scenario}_*_messages.log"))


def free_udp_port(kind: int = 2) -> int:
    """A port free on 127.0.0.1 (``kind``: socket.SOCK_DGRAM, or SOCK_STREAM for TCP)."""
    import socket

    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_sipp_uas(scenario: str, port: int, workdir: Path, *args: str,
                         timeout: float = 40.0) -> asyncio.subprocess.Process:
    """SIPp as the called party on 127.0.0.1:``port`` for one call (``-sn uas`` or ``scenarios/NAME.xml``)."""
    await asyncio.to_thread(_remove_traces, workdir, scenario)
    which = ["-sn", "uas"] if scenario == "uas" else ["-sf", str(SCENARIOS / f"{scenario}.xml")]
    cmd = ["sipp", *which, "-i", "127.0.0.1", "-p", str(port), "-m", "1", "-nostdin", "-trace_msg",
           "-trace_err", "-timeout", f"{int(timeout)}s", "-timeout_error", *args]
    return await asyncio.create_subprocess_exec(*cmd, cwd=workdir, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)


async def finish_sipp(proc: asyncio.subprocess.Process, workdir: Path, scenario: str,
                      timeout: float = 30.0) -> SippRun:
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
    messages = await asyncio.to_thread(_read_traces, workdir, scenario)
    return SippRun(proc.returncode if proc.returncode is not None else -1, out.decode(errors="replace"), messages)


async def wait_listening(port: int, timeout: float = 10.0) -> None:
    """Until something accepts TCP connections on 127.0.0.1:``port`` (SIPp as a TCP server)."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return
