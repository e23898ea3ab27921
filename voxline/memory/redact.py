"""PII detection and redaction for stored text. Pure functions, no I/O.

Card numbers are only redacted when they pass the Luhn check, so order numbers and
dates are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
# 13-19 digits with optional spaces/dashes between groups.
CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
PHONE = re.compile(r"(?<![\w+])\+?\d[\d ().-]{7,}\d\b")
SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\b")

HEALTH_TERMS = (
    "diagnos",
    "prescri",
    "medication",
    "cancer",
    "diabetes",
    "hiv",
    "pregnan",
    "therapy",
    "depress",
    "disease",
    "illness",
    "surgery",
    "symptom",
    "blood pressure",
    "allerg",
)


def luhn_ok(digits: str) -> bool:
    ds = [int(c) for c in digits if c.isdigit()]
    if not 13 <= len(ds) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(ds)):
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def find_cards(text: str) -> list[str]:
    return [m.group() for m in CARD.finditer(text) if luhn_ok(m.group())]


def mentions_health(text: str) -> bool:
    low = text.lower()
    return any(t in low for t in HEALTH_TERMS)


def redact(text: str, kinds: Iterable[str] = ("card", "email", "ssn", "iban", "phone")) -> str:
    """Replace PII with [CARD], [EMAIL], [SSN], [IBAN], [PHONE] (cards before phones)."""
    kinds = set(kinds)
    if "card" in kinds:
        text = CARD.sub(lambda m: "[CARD]" if luhn_ok(m.group()) else m.group(), text)
    if "email" in kinds:
        text = EMAIL.sub("[EMAIL]", text)
    if "ssn" in kinds:
        text = SSN.sub("[SSN]", text)
    if "iban" in kinds:
        text = IBAN.sub("[IBAN]", text)
    if "phone" in kinds:
        text = PHONE.sub(
            lambda m: "[PHONE]" if sum(c.isdigit() for c in m.group()) >= 9 else m.group(), text
        )
    return text
