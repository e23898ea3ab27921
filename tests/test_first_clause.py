"""The first clause of each answer goes to TTS early; the rest by sentence."""

from __future__ import annotations

from pipecat.utils.text.base_text_aggregator import TextType
from pipecat.utils.text.simple_text_aggregator import SimpleTextAggregator

from voxline.integrations.providers.local.first_clause import (
    BlankEndsSentence,
    FirstClauseAggregator,
    use_sentence_ends,
)
from voxline.integrations.providers.registry import build_tts
from voxline.spec import TTSBlock


async def _feed(agg: FirstClauseAggregator, tokens: list[str]) -> list[str]:
    out = []
    for token in tokens:
        out += [a.text async for a in agg.aggregate(token)]
    return out


async def test_first_clause_then_sentences_then_again_next_answer():
    agg = FirstClauseAggregator()
    tokens = ["Luigi's", " Trattoria", " is", " open", " daily,", " from", " noon", " to",
              " ten.", " We", " also", " deliver,", " of", " course.", " Bye"]
    out = await _feed(agg, tokens)
    assert out[0] == "Luigi's Trattoria is open daily,"
    assert "from noon to ten." in out[1]
    assert all("deliver," not in o or o.endswith("course.") for o in out)  # later commas wait
    assert (await agg.flush()).text == "Bye"
    # A new answer (after flush) gets its first clause early again.
    assert (await _feed(agg, ["Sure", " thing", " my", " friend,", " yes"]))[0] == "Sure thing my friend,"


async def test_a_one_word_opening_is_spoken_at_once():
    agg = FirstClauseAggregator()
    assert await _feed(agg, ["Sure", ",", " I", " can", " help."]) == ["Sure,"]
    assert (await agg.flush()).text == "I can help."
    assert await _feed(agg, ["1,000", " guests", " fit."]) == []  # a comma inside a number ends nothing


async def test_a_blank_after_a_full_stop_ends_the_sentence():
    agg = BlankEndsSentence()
    assert await _feed(agg, ["We", " open", " at", " noon."]) == []
    assert await _feed(agg, [" "]) == ["We open at noon."]  # the guard passes the blank on alone
    assert await _feed(agg, ["Ask", " Dr.", " "]) == []  # an abbreviation does not end it
    assert await _feed(agg, ["Smith", " today!", "  "]) == ["Ask Dr. Smith today!"]
    assert await _feed(agg, ["It", " is", " 3.5", " "]) == []  # a blank after no full stop
    assert (await agg.flush()).text == "It is 3.5"
    first = FirstClauseAggregator()
    assert await _feed(first, ["Sure.", " "]) == ["Sure."]


def test_every_tts_built_from_a_spec_ends_sentences_at_the_blank(monkeypatch):
    monkeypatch.setenv("ELEVENLABS_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    for block in ({"provider": "elevenlabs", "voice": "v"}, {"provider": "openai", "voice": "alloy"},
                  {"provider": "espeak"}):
        tts = build_tts(TTSBlock.model_validate(block))
        assert isinstance(tts._text_aggregator, BlankEndsSentence), block
    token_mode = SimpleTextAggregator(aggregation_type=TextType.TOKEN)

    class Service:
        _text_aggregator = token_mode

    assert use_sentence_ends(Service())._text_aggregator is token_mode  # streams tokens: left alone
