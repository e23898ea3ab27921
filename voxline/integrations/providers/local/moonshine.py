"""Moonshine base-en, loaded once per process, decoded greedily with onnxruntime.

Moonshine's encoder runs over the utterance as long as it is (Whisper's always over
30 s of padded audio), but its decoder writes one token at a time (~50 ms each on
this 2-core machine). Measured against Whisper base (benchmarks/stt_models.py, 85
utterances): word error rate 16.2 % vs 18.4 % (but worse on the 7 under 2 s), latency
0.91x Whisper's up to 2 s of speech, 0.96x up to 3.5 s, slower beyond. Too little to
route the agents' short utterances to it, so no agent uses it; the benchmark does, and
shows when that changes.

The weights are the ones moonshine-cpp 0.1.4 ships (pinned in the manifest). Its own
native library is not used: it took 1.8× this loop's time per short utterance
here, and its Python wrapper's ``transcribe`` cannot run (it names ``ctypes.c_float_p``,
which does not exist). The loop is the one of ``useful-moonshine-onnx``: the merged
decoder, its self-attention cache grown each step, the cross-attention cache kept from
the first step.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from voxline.extras import require

RATE = 16000
START, END = 1, 2  # <s>, </s>
TOKENS_PER_SEC = 6  # at most, as useful-moonshine-onnx bounds a decode
SPACE = "\u2581"  # SentencePiece's word boundary


def read_tokenizer(path: Path) -> list[bytes]:
    """tokenizer.bin: each token's bytes after its length (one byte, two when ≥ 128)."""
    data, tokens, i = path.read_bytes(), [], 0
    while i < len(data):
        n = data[i]
        i += 1
        if n >= 128:
            n, i = (n & 127) | (data[i] << 7), i + 1
        tokens.append(data[i:i + n])
        i += n
    return tokens


class MoonshineModel:
    def __init__(self, folder: Path, *, threads: int = 2):
        ort = require("onnxruntime", "local")
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        cpu = ["CPUExecutionProvider"]
        self._encoder = ort.InferenceSession(str(folder / "encoder_model.ort"), options, providers=cpu)
        self._decoder = ort.InferenceSession(str(folder / "decoder_model_merged.ort"), options, providers=cpu)
        # present.N.decoder.key (an output) feeds past_key_values.N.decoder.key next step
        self._cache_names = ["past_key_values." + o.name.removeprefix("present.")
                             for o in self._decoder.get_outputs()[1:]]
        heads, dim = self._decoder.get_inputs()[2].shape[1], self._decoder.get_inputs()[2].shape[3]
        self._empty = np.zeros((1, heads, 0, dim), np.float32)
        self._vocab = read_tokenizer(folder / "tokenizer.bin")
        # Sessions are thread-safe, but two decodes at once would only share 2 cores.
        self._lock = threading.Lock()

    def transcribe(self, samples: np.ndarray) -> str:
        """The text of 16 kHz mono float samples in [-1, 1]; blocking (run it in a thread)."""
        audio = np.ascontiguousarray(samples, dtype=np.float32)[None]
        if audio.shape[1] < RATE // 10:  # under 100 ms: too short for the encoder, and nobody spoke
            return ""
        with self._lock:
            tokens = self._decode(audio)
        text = b"".join(self._vocab[t] for t in tokens if t < len(self._vocab))
        return text.decode("utf-8", errors="replace").replace(SPACE, " ").strip()

    def _decode(self, audio: np.ndarray) -> list[int]:
        hidden = self._encoder.run(None, {"input_values": audio})[0]
        cache = {name: self._empty for name in self._cache_names}
        tokens, last = [], START
        for step in range(int(audio.shape[1] / RATE * TOKENS_PER_SEC) + 1):
            logits, *present = self._decoder.run(None, {
                "input_ids": np.array([[last]], np.int64), "encoder_hidden_states": hidden,
                "use_cache_branch": np.array([step > 0]), **cache})
            last = int(logits[0, -1].argmax())
            if last == END:
                break
            tokens.append(last)
            for name, value in zip(self._cache_names, present, strict=True):
                if step == 0 or ".decoder." in name:  # the encoder's keys/values are made once
                    cache[name] = value
        return tokens
