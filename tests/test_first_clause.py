"""The first clause of each answer goes to TTS early; the rest by sentence."""

from __future__ import annotations

from voxline.integrations.providers.local.first_clause import FirstClauseAggregator


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


async def test_short_openings_are_not_cut():
    agg = FirstClauseAggregator()
    assert await _feed(agg, ["Yes,", " we", " do."]) == []  # "Yes," is too short; sentence waits for lookahead
    assert (await agg.flush()).text == "Yes, we do."
