"""Two worker processes on one machine: local models on all cores each, or on their share.

``voxline serve --workers N`` runs N processes; each loads its own Whisper, Piper and
llama.cpp. Left to their defaults every model runs on every core, so two workers
transcribing at once run more threads than there are cores. ``VOXLINE_CPU_THREADS``
(which ``serve`` sets to cores ÷ workers) gives each its share. Both processes here
transcribe real speech (LibriVox, as the phone hears it) and synthesize a sentence in
a loop, at the same time; the figure is each operation's latency, p50 and p95 over
both processes, uncapped against capped, as a ratio (below 1: the cap is faster).

    python benchmarks/cores_per_worker.py [--rounds 6]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORKERS = 2


def work(rounds: int) -> dict[str, list[float]]:
    """One worker: load the models once, then transcribe and synthesize ``rounds`` times."""
    import time

    from tests.phone.live_kit import librivox_clips
    from voxline import audio
    from voxline.integrations.providers.local import manifest, shared

    whisper = shared.whisper(manifest.resolve("whisper-base"))
    voice = shared.piper_voice(next(manifest.resolve("piper-en-us").glob("*.onnx")))
    clips = [audio.to_pcm16(np.frombuffer(c.pcm, np.int16), 8000, 16000) for c in librivox_clips()[:3]]
    times: dict[str, list[float]] = {"stt": [], "tts": []}
    for i in range(rounds):
        samples = np.frombuffer(clips[i % len(clips)], np.int16).astype(np.float32) / 32768
        started = time.perf_counter()
        segments, _ = whisper.transcribe(samples, language="en", beam_size=1)
        list(segments)
        times["stt"].append(time.perf_counter() - started)
        started = time.perf_counter()
        for _ in voice.synthesize("Your table for four is booked for Friday at eight."):
            pass
        times["tts"].append(time.perf_counter() - started)
    return times


def run(rounds: int, cap: str | None) -> dict[str, list[float]]:
    env = {k: v for k, v in os.environ.items() if k not in ("VOXLINE_CPU_THREADS", "OMP_NUM_THREADS")}
    if cap:
        env["VOXLINE_CPU_THREADS"] = cap
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", str(rounds)], env=env,
                              stdout=subprocess.PIPE, text=True) for _ in range(WORKERS)]
    merged: dict[str, list[float]] = {"stt": [], "tts": []}
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"a worker failed ({proc.returncode})")
        for kind, values in json.loads(out).items():
            merged[kind].extend(values[1:])  # the first round warms the model up
    return merged


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(work(args.worker)))
        return
    cores = os.cpu_count() or 1
    share = str(max(1, cores // WORKERS))
    runs = {"all cores": [], "share": []}  # type: dict[str, list[dict[str, list[float]]]]
    for _ in range(2):  # alternate, so both see the same machine
        runs["all cores"].append(run(args.rounds, None))
        runs["share"].append(run(args.rounds, share))
    result: dict[str, object] = {"workers": WORKERS, "cores": cores, "share_threads": int(share),
                                 "rounds": args.rounds}
    for kind in ("stt", "tts"):
        uncapped = [v for r in runs["all cores"] for v in r[kind]]
        capped = [v for r in runs["share"] for v in r[kind]]
        for q in (50, 95):
            a, b = float(np.percentile(uncapped, q)), float(np.percentile(capped, q))
            result[f"{kind}_p{q}_ms"] = {"all_cores": round(a * 1000), "share": round(b * 1000),
                                         "share_ratio": round(b / a, 3)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
