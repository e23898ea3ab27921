"""Text as it should sound: times, dates, money, phone numbers and numbers in words, and
the agent's vocabulary for the recognizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxline.integrations.providers.local.espeak import EspeakTTSService
from voxline.processors.speech_text import speakable, speakable_transform, stt_hints, use_speakable
from voxline.spec import load_spec

RESTAURANT = Path(__file__).resolve().parents[1] / "examples" / "restaurant" / "agent.yaml"


@pytest.mark.parametrize(("text", "spoken"), [
    ("Luigi's Trattoria is open from 17:00 to 20:00.", "Luigi's Trattoria is open from five p.m. to eight p.m."),
    ("Open 17:00-20:00 daily.", "Open five p.m. to eight p.m. daily."),
    ("A table at 8:30 pm for 4.", "A table at eight thirty p.m. for four."),
    ("At 8pm or 7:05 p.m.", "At eight p.m. or seven oh five p.m."),
    ("A table for two at 7:30.", "A table for two at seven thirty."),
    ("At 12:00, 00:00 or 08:15.", "At noon, midnight or eight fifteen a.m."),
    ("It costs $12.50, $1 or £3.", "It costs twelve dollars and fifty cents, one dollar or three pounds."),
    ("Call (555) 010-0123.", "Call five five five, zero one zero, zero one two three."),
    ("Call +1 555 010 0123.", "Call plus one, five five five, zero one zero, zero one two three."),
    ("On 2026-12-24.", "On December twenty-fourth, twenty twenty-six."),
    ("On December 24th or Dec 3.", "On December twenty-fourth or December third."),
    ("On 24 December.", "On the twenty-fourth of December."),
    ("On 12/24.", "On December twenty-fourth."),
    ("The 1st, 2nd, 23rd and 4th.", "The first, second, twenty-third and fourth."),
    ("Booking a1b2c3.", "Booking A one B two C three."),
    ("Zip 90210, 1,250 seats, 3.5 stars, 15% off.",
     "Zip nine zero two one zero, one thousand two hundred and fifty seats, three point five stars, "
     "fifteen percent off."),
    ("In 2026 we seat 2-4 people.", "In twenty twenty-six we seat two to four people."),
    ("**Fish & chips**", "Fish and chips"),
    ("No numbers here.", "No numbers here."),
])
def test_speakable(text, spoken):
    assert speakable(text) == spoken


async def test_registered_on_a_tts_service_once():
    tts = use_speakable(use_speakable(EspeakTTSService()))
    transforms = [t for _, t in tts._text_transforms]
    assert transforms.count(speakable_transform) == 1
    assert await speakable_transform("At 17:00.") == "At five p.m."


def test_stt_hints_are_the_agents_names_and_tool_words_not_its_examples():
    hints = stt_hints(load_spec(RESTAURANT))
    assert "Luigi's Trattoria" in hints
    for word in ("book", "table", "cancel", "restaurants"):
        assert word in hints
    assert "Tom" not in hints  # an example's name would bias every caller toward it
