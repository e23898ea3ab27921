"""Tool arguments from a small local model: quick to write, checked, and never invented.

Writing arguments under a JSON-schema grammar is slow on a CPU (the grammar is checked
against the whole vocabulary at every token), and a small model that follows its
examples writes well-formed arguments nearly always. So arguments are written freely
first and checked against the tool's schema; only when that fails are they written
again under the grammar.

A small model also fills in what the caller never said ("name": "Tom" from its
examples, a time it made up). ``ungrounded`` finds the required string arguments with
no word the caller said in this call; the service then asks for them instead of
calling the tool.
"""

from __future__ import annotations

import json
import re
from typing import Any

_NUMBERS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty".split())}
_NUMBERS.update({"thirty": "30", "forty": "40", "fifty": "50", "half": "30", "quarter": "15"})
# Words that say nothing about whether the caller gave a value.
_FILLER = {"am", "pm", "a", "an", "the", "of", "at", "on", "in", "s", "o'clock", "oclock", "p", "m",
           "and", "for", "to", "is", "my", "name", "under"}
_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": int | float, "boolean": bool,
                          "array": list, "object": dict}


def parse_arguments(text: str, schema: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON object at the start of ``text`` if it fits ``schema``, else None."""
    try:
        value, _ = json.JSONDecoder().raw_decode(text.lstrip())
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    properties = schema.get("properties") or {}
    if any(name not in value for name in schema.get("required") or []):
        return None
    for name, v in value.items():
        if name not in properties:
            return None
        expected = _TYPES.get(properties[name].get("type", ""))
        if expected is not None and (not isinstance(v, expected) or (expected is int and isinstance(v, bool))):
            return None
    return value


_SPELLED = re.compile(r"(?<![A-Za-z])(?:[A-Za-z](?:[\s.,-]+|$)){3,}")


def respell(arguments: dict[str, Any]) -> dict[str, Any]:
    """A name the caller spelled out ("Kawski, K-O-W-A-L-S-K-I") is the spelled one."""
    out = dict(arguments)
    for key, value in arguments.items():
        if isinstance(value, str) and (m := _SPELLED.search(value)):
            letters = re.sub(r"[^A-Za-z]", "", m.group(0))
            rest = (value[: m.start()] + value[m.end():]).strip(" ,.-")
            words = rest.split()
            # "Priya P R I Y A" or "Kawski, K-O-W-A-L-S-K-I": the spelling replaces the word it spells
            if words and words[-1][:1].lower() == letters[:1].lower():
                words[-1] = letters.capitalize()
            else:
                words.append(letters.capitalize())
            out[key] = " ".join(words)
    return out


def _tokens(text: str) -> set[str]:
    text = re.sub(r"(?<=\d)(?=[a-z])|(?<=[a-z])(?=\d)", " ", text.lower().replace(":", " "))  # 7pm → 7 pm
    words = re.findall(r"[a-z0-9']+", text)
    spelled = [re.sub(r"[^a-z]", "", m.group(0)) for m in _SPELLED.finditer(text)]  # "k-o-w-a-l-s-k-i"
    return {_NUMBERS.get(w, w).removesuffix("'s") for w in [*words, *spelled]} - _FILLER


def ungrounded(arguments: dict[str, Any], schema: dict[str, Any], said: str) -> list[str]:
    """Required string arguments none of whose words the caller said."""
    heard = _tokens(said)
    missing = []
    for name in schema.get("required") or []:
        value = arguments.get(name)
        if not isinstance(value, str):
            continue
        words = _tokens(value)
        if not words or not words & heard:
            missing.append(name)
    return missing


def ask_for(missing: list[str]) -> str:
    """What the agent asks when the caller has not given ``missing`` yet."""
    names = [m.replace("_", " ") for m in missing]
    listed = names[0] if len(names) == 1 else ", the ".join(names[:-1]) + " and the " + names[-1]
    return f"Sure. Could you tell me the {listed}, please?"
