"""Local speech recognition: Moonshine base-en against Whisper base, by utterance length.

The utterances are the golden suite's caller sentences spoken by the local voices
(Piper, and espeak-ng as a second, harsher voice) and Debian's LibriVox recordings
(real read speech). Each engine transcribes every utterance ``--repeat`` times, one
at a time, on the loaded model; latency is the fastest of the repeats (the machine may
be shared), word error rate is over all words. Moonshine is compared with Whisper as
a ratio, for utterances up to ``--short`` seconds and beyond.

    python benchmarks/stt_models.py [--repeat 2] [--limit 40]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.phone.live_kit import librivox_clips, wer  # noqa: E402
from voxline import audio  # noqa: E402
from voxline.integrations.providers.local import manifest, shared  # noqa: E402

RATE = 16000


def caller_sentences(limit: int) -> list[str]:
    said = []
    for path in sorted((ROOT / "tests" / "golden").glob("*/*.yaml")):
        for turn in (yaml.safe_load(path.read_text()) or {}).get("turns", []):
            text = turn.get("say") or turn.get("barge_in")
            if text and text not in said:
                said.append(text)
    return said[:limit]


def espeak(text: str) -> bytes:
    import io

    import soundfile as sf

    wav = subprocess.run(["espeak-ng", "--stdout", text], capture_output=True, check=True).stdout
    samples, rate = sf.read(io.BytesIO(wav), dtype="int16")
    return audio.to_pcm16(samples, rate, RATE)


def utterances(limit: int) -> list[tuple[str, str, np.ndarray]]:
    """(voice, reference text, 16 kHz float samples)."""
    out = []
    for text in caller_sentences(limit):
        out.append(("piper", text, audio.synthesize(text, RATE)))
        out.append(("espeak", text, espeak(text)))
    for clip in librivox_clips():  # 8 kHz phone audio: what a phone call hears
        out.append(("librivox-8k", clip.text, audio.to_pcm16(np.frombuffer(clip.pcm, np.int16), 8000, RATE)))
    return [(v, t, np.frombuffer(p, np.int16).astype(np.float32) / 32768.0) for v, t, p in out]


def whisper_engine():
    model = shared.whisper(str(manifest.resolve("whisper-base")))

    def run(samples: np.ndarray) -> str:
        segments, _ = model.transcribe(samples, language="en", beam_size=1, condition_on_previous_text=False)
        return " ".join(s.text for s in segments)
    return run


def moonshine_engine():
    model = shared.moonshine(str(manifest.resolve("moonshine-base-en")))
    return model.transcribe


def measure(engine, items, repeat: int) -> list[dict]:
    rows = []
    for voice, text, samples in items:
        times, heard = [], ""
        for _ in range(repeat):
            start = time.perf_counter()
            heard = engine(samples)
            times.append((time.perf_counter() - start) * 1000)
        rows.append({"voice": voice, "secs": len(samples) / RATE, "ms": min(times),
                     "errors": wer(text, heard) * len(text.split()), "words": len(text.split())})
    return rows


def summary(rows: list[dict]) -> dict:
    return {"n": len(rows), "latency_p50_ms": round(statistics.median(r["ms"] for r in rows), 1),
            "wer": round(sum(r["errors"] for r in rows) / max(1, sum(r["words"] for r in rows)), 4)}


def main(repeat: int, limit: int, short: float) -> dict:
    load_before = [round(x, 2) for x in os.getloadavg()]
    items = utterances(limit)
    engines = {"whisper-base": whisper_engine(), "moonshine-base-en": moonshine_engine()}
    for engine in engines.values():
        engine(items[0][2])  # warm
    rows = {name: measure(engine, items, repeat) for name, engine in engines.items()}
    result: dict = {"utterances": len(items), "repeat": repeat, "short_secs": short}
    for bucket, keep in (("short", lambda r: r["secs"] <= short), ("long", lambda r: r["secs"] > short),
                         ("all", lambda r: True)):
        figures = {name: summary([r for r in rs if keep(r)]) for name, rs in rows.items() if any(keep(r) for r in rs)}
        if len(figures) == 2:
            w, m = figures["whisper-base"], figures["moonshine-base-en"]
            figures["moonshine_vs_whisper_latency"] = round(m["latency_p50_ms"] / w["latency_p50_ms"], 3)
        result[bucket] = figures
    for voice in sorted({v for v, _, _ in items}):
        result[f"wer_{voice}"] = {name: summary([r for r in rs if r["voice"] == voice])["wer"]
                                  for name, rs in rows.items()}
    result["load_avg"] = {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]}
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--limit", type=int, default=40, help="caller sentences from the golden suite")
    parser.add_argument("--short", type=float, default=3.5, help="seconds: the short/long boundary")
    args = parser.parse_args()
    print(json.dumps(main(args.repeat, args.limit, args.short), indent=2))
