"""Whisper's own language detection on each utterance, among the languages an agent speaks.

faster-whisper detects the language from the encoder's output for the first 30 s window,
then decodes in it; but its ``transcribe(language=None)`` encodes that window twice (once
to detect, once to decode: ~0.5 s more per utterance on 2 cores), and it decodes in
whatever language it found, listed or not. Here the window is encoded once, the language
is chosen among the listed ones from the same output, and decoding starts from it
(``generate_segments`` takes an encoder output for the first window). The options are the
ones ``transcribe`` itself builds (its segment generator is lazy: nothing is decoded
twice). Pinned faster-whisper internals; if they change, the slower public way is used.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("voxline.models")

# A detection below this probability keeps the current language: short answers ("sí",
# "ok") are often heard as several languages at once.
MIN_PROBABILITY = 0.6


@dataclass(frozen=True)
class Heard:
    segments: list[Any]
    language: str  # the language decoded in
    probability: float  # Whisper's probability of that language for this utterance


def choose(probabilities: dict[str, float], languages: Sequence[str], current: str,
           min_probability: float = MIN_PROBABILITY) -> str:
    """The listed language most probable, if it is not ``current`` and confident enough;
    else ``current``."""
    best = max(languages, key=lambda code: probabilities.get(code, 0.0))
    if best != current and probabilities.get(best, 0.0) >= min_probability:
        return best
    return current


def transcribe_detecting(model: Any, samples: Any, languages: Sequence[str], current: str,
                         min_probability: float = MIN_PROBABILITY, **options: Any) -> Heard:
    """Transcribe ``samples`` (16 kHz float32) in the language Whisper hears among
    ``languages``; ``options`` are ``WhisperModel.transcribe``'s."""
    try:
        return _one_encoding(model, samples, languages, current, min_probability, options)
    except (AttributeError, TypeError) as e:  # faster-whisper's internals moved
        log.warning("whisper language detection: falling back to two encodings (%s)", type(e).__name__)
    _, _, ranked = model.detect_language(audio=samples)
    probabilities = dict(ranked)
    language = choose(probabilities, languages, current, min_probability)
    segments, _ = model.transcribe(samples, language=language, **options)
    return Heard(list(segments), language, probabilities.get(language, 0.0))


def _one_encoding(model: Any, samples: Any, languages: Sequence[str], current: str,
                  min_probability: float, options: dict[str, Any]) -> Heard:
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer

    extractor = model.feature_extractor
    features = extractor(samples)
    content = features.shape[-1] - 1
    # The first window exactly as generate_segments cuts it, so its encoding can be reused.
    encoded = model.encode(pad_or_trim(features[:, : min(extractor.nb_max_frames, content)]))
    probabilities = {token[2:-2]: p for token, p in model.model.detect_language(encoded)[0]}
    language = choose(probabilities, languages, current, min_probability)
    _, info = model.transcribe(samples, language=language, **options)  # lazy: for its options only
    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language)
    segments = list(model.generate_segments(features, tokenizer, info.transcription_options, False, encoded))
    return Heard(segments, language, probabilities.get(language, 0.0))
