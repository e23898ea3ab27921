"""Text as it should sound: times, dates, money, phone numbers and numbers in words.

A voice reads what it is given: "17:00" comes out as "seventeen thousand" from some
voices, "$12.50" as "dollar twelve point five zero". ``speakable`` rewrites a clause
into words before synthesis; it is registered as a TTS text transform, so only the
voice hears the rewrite and the conversation context keeps the text as written.

``stt_hints`` gives a speech recognizer the agent's own vocabulary (names in its
prompt, greeting and examples, its tools' words), for engines that take a prompt.
"""

from __future__ import annotations

import re
from typing import Any

from num2words import num2words

_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]
_MONTH_ABBR = {m[:3].lower(): i + 1 for i, m in enumerate(_MONTHS)}
_MONTH_RE = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
_AMPM = r"(?:[ap]\.?\s?m\b\.?)"
_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "cent", "cents"),
             "£": ("pound", "pounds", "penny", "pence")}
_DIGITS = "zero one two three four five six seven eight nine".split()


def _words(n: int) -> str:
    return str(num2words(n)).replace(",", "")


def _ordinal(n: int) -> str:
    return str(num2words(n, to="ordinal"))


def _year(n: int) -> str:
    return str(num2words(n, to="year"))


def _clock(hour: int, minute: int, suffix: str | None, leading_zero: bool) -> str:
    """A time of day as said on the phone: 17:00 → five p.m., 8:30 → eight thirty."""
    if suffix is None and (hour, minute) == (12, 0):
        return "noon"
    if suffix is None and (hour, minute) in ((0, 0), (24, 0)):
        return "midnight"
    if suffix is None:
        if hour >= 12:
            suffix = "p.m."
        elif hour == 0 or leading_zero:
            suffix = "a.m."
    h12 = hour % 12 or 12
    spoken = _words(h12)
    if minute:
        spoken += " oh " + _words(minute) if minute < 10 else " " + _words(minute)
    return f"{spoken} {suffix}" if suffix else spoken


def _suffix(raw: str | None) -> str | None:
    if not raw:
        return None
    return "a.m." if raw.strip().lower().startswith("a") else "p.m."


def _time_24(m: re.Match[str]) -> str:
    hour, minute = int(m["h"]), int(m["m"])
    return _clock(hour, minute, _suffix(m["s"]), m["h"].startswith("0") and len(m["h"]) == 2)


def _time_ampm(m: re.Match[str]) -> str:
    return _clock(int(m["h"]), 0, _suffix(m["s"]), False)


def _money(m: re.Match[str]) -> str:
    one, many, cent, cents = _CURRENCY[m["cur"]]
    whole = int(m["whole"].replace(",", ""))
    frac = int((m["frac"] or "0").ljust(2, "0")[:2])
    spoken = f"{_words(whole)} {one if whole == 1 else many}"
    if frac:
        spoken += f" and {_words(frac)} {cent if frac == 1 else cents}"
    return spoken


def _digits(text: str) -> str:
    return " ".join(_DIGITS[int(d)] for d in text)


def _phone(m: re.Match[str]) -> str:
    raw = m.group(0)
    groups = [g for g in re.split(r"[^\d]+", raw) if g]
    if len(groups) == 1 and len(groups[0]) == 10:  # 5550100123 → 555, 010, 0123
        g = groups[0]
        groups = [g[:3], g[3:6], g[6:]]
    spoken = ", ".join(_digits(g) for g in groups)
    return ("plus " if raw.lstrip().startswith("+") else "") + spoken


def _date_iso(m: re.Match[str]) -> str:
    year, month, day = int(m["y"]), int(m["mo"]), int(m["d"])
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return m.group(0)
    return f"{_MONTHS[month - 1]} {_ordinal(day)}, {_year(year)}"


def _month_day(m: re.Match[str]) -> str:
    month = _MONTHS[_MONTH_ABBR[m["mon"][:3].lower()] - 1]
    day = int(m["d"])
    year = f", {_year(int(m['y']))}" if m["y"] else ""
    return f"{month} {_ordinal(day)}{year}" if 1 <= day <= 31 else m.group(0)


def _day_month(m: re.Match[str]) -> str:
    month = _MONTHS[_MONTH_ABBR[m["mon"][:3].lower()] - 1]
    day = int(m["d"])
    end = "." if m["mon"].endswith(".") and len(m["mon"]) > 5 else ""  # "December." ends a sentence
    return f"the {_ordinal(day)} of {month}{end}" if 1 <= day <= 31 else m.group(0)


def _slash_date(m: re.Match[str]) -> str:
    month, day = int(m["a"]), int(m["b"])  # US order, as the default voice is en-US
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return m.group(0)
    year = f", {_year(int(m['y']) + (2000 if len(m['y']) == 2 else 0))}" if m["y"] else ""
    return f"{_MONTHS[month - 1]} {_ordinal(day)}{year}"


def _number(m: re.Match[str]) -> str:
    raw = m.group(0)
    if "." in raw:
        whole, frac = raw.replace(",", "").split(".")
        return f"{_words(int(whole))} point {_digits(frac)}"
    plain = raw.replace(",", "")
    if "," not in raw and len(plain) >= 5:  # codes, ids, zip codes: digit by digit
        return _digits(plain)
    if "," not in raw and len(plain) == 4 and 1900 <= int(plain) <= 2099:
        return _year(int(plain))
    return _words(int(plain))


# In the order they apply: each rewrites what the ones before left as digits.
_RULES: list[tuple[re.Pattern[str], Any]] = [
    (re.compile(r"[*_#`]+"), ""),  # markdown emphasis and headers
    (re.compile(r"(?<![\w.])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?!\d)"), _phone),
    (re.compile(r"(?<![\w.])\+\d{7,15}(?!\d)"), _phone),
    (re.compile(r"(?<![\w.])\d{10}(?!\d)"), _phone),
    (re.compile(r"\b(?P<y>\d{4})-(?P<mo>\d{1,2})-(?P<d>\d{1,2})\b"), _date_iso),
    (re.compile(rf"\b(?P<mon>{_MONTH_RE})\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(?P<y>\d{{4}})\b)?"),
     _month_day),
    (re.compile(rf"\b(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<mon>{_MONTH_RE})(?![a-z])"), _day_month),
    (re.compile(r"\b(?P<a>\d{1,2})/(?P<b>\d{1,2})(?:/(?P<y>\d{4}|\d{2}))?\b"), _slash_date),
    (re.compile(r"(?P<cur>[$€£])\s?(?P<whole>\d[\d,]*)(?:\.(?P<frac>\d{1,2}))?\b"), _money),
    (re.compile(r"\b(?P<n>\d+(?:\.\d+)?)\s?%"), lambda m: f"{_number_text(m['n'])} percent"),
    # Ranges of times: "17:00-20:00" → "17:00 to 20:00".
    (re.compile(r"(?<=\d)\s?[-–]\s?(?=\d{1,2}(?::\d\d)?\s*(?:[ap]\.?\s?m|\b))"), " to "),
    (re.compile(rf"\b(?P<h>[01]?\d|2[0-4])[:.](?P<m>[0-5]\d)(?:\s?(?P<s>{_AMPM}))?(?!\d)", re.I), _time_24),
    (re.compile(rf"\b(?P<h>1[0-2]|0?[1-9])\s?(?P<s>{_AMPM})", re.I), _time_ampm),
    (re.compile(r"\b(\d+)(?:st|nd|rd|th)\b"), lambda m: _ordinal(int(m[1]))),
    (re.compile(r"\b(?=\w*\d)(?=\w*[A-Za-z])[A-Za-z0-9]{3,}\b"),  # codes like a1b2c3: spelled
     lambda m: " ".join(_DIGITS[int(c)] if c.isdigit() else c.upper() for c in m.group(0))),
    (re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|(?<![\w.])\d+(?:\.\d+)?(?![\d\w])"), _number),
    (re.compile(r"\s&\s"), " and "),
]


def _number_text(raw: str) -> str:
    return _number(re.match(r".+", raw))  # type: ignore[arg-type]


def speakable(text: str) -> str:
    """``text`` with its times, dates, money, phone numbers and numbers in words."""
    if not re.search(r"[\d$€£%&*_#`]", text):
        return text
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return re.sub(r"([ap]\.m\.)\.", r"\1", text)  # "at five p.m.." ends once


async def speakable_transform(text: str, _text_type: Any = None) -> str:
    """``speakable`` as a Pipecat TTS text transform."""
    return speakable(text)


def use_speakable(tts: Any) -> Any:
    """Register ``speakable`` on a TTS service (any Pipecat TTSService); others pass."""
    add = getattr(tts, "add_text_transformer", None)
    if callable(add) and speakable_transform not in [t for _, t in getattr(tts, "_text_transforms", [])]:
        add(speakable_transform, "*")
    return tts


_TOOL_STOP = {"get", "set", "do", "the", "a", "an", "of", "for", "to", "by", "call", "end", "builtin"}


def stt_hints(spec: Any, limit: int = 40) -> str:
    """The agent's vocabulary for a recognizer prompt: the names in its prompt and
    greeting (not its examples: their names are not this caller's) and its tools' words."""
    names: list[str] = []
    for text in (spec.system_prompt, spec.greeting or ""):
        for sentence in re.split(r"[.!?\n]+\s*", text):
            words = sentence.split()
            run: list[str] = []
            for i, word in enumerate([*words, ""]):
                w = word.strip(",;:\"()")
                if i > 0 and w[:1].isupper() and w not in ("I", "I'm", "I'd"):
                    run.append(w)
                    continue
                name = " ".join(run)
                if name and not any(name in n for n in names):
                    names.append(name)
                run = []
    words_: list[str] = []
    for tool in spec.tools:
        for w in re.split(r"[_\W]+", tool.name.lower()):
            if w and w not in _TOOL_STOP and w not in words_:
                words_.append(w)
    return ", ".join([*names, *words_][:limit])


def apply_stt_hints(spec: Any, stt: Any) -> None:
    """Give ``stt`` the agent's vocabulary if it takes hints (``set_vocabulary``).
    ``stt.options.hotwords`` replaces the derived words; ``stt.options.hints: false``
    turns them off."""
    options = spec.stt.options
    set_vocabulary = getattr(stt, "set_vocabulary", None)
    if not callable(set_vocabulary) or options.get("hints", True) is False:
        return
    vocabulary = options.get("hotwords") or stt_hints(spec)
    if vocabulary:
        set_vocabulary(str(vocabulary))
