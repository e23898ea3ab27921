"""The restaurant concierge's tools: find restaurants, book and cancel tables.

Bookings live in a small JSON file (``$RESTAURANT_BOOKINGS`` or ./var/bookings.json)
so a second call can see what the first one booked. Each function's signature is
its schema: voxline validates the LLM's arguments against it before calling.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from pathlib import Path

RESTAURANTS = [
    {"name": "Luigi's Trattoria", "cuisine": "italian", "area": "downtown", "opens": "17:00"},
    {"name": "Sakura House", "cuisine": "japanese", "area": "riverside", "opens": "12:00"},
    {"name": "The Green Fork", "cuisine": "vegetarian", "area": "downtown", "opens": "11:00"},
    {"name": "El Mercado", "cuisine": "mexican", "area": "old town", "opens": "12:00"},
]
_lock = threading.Lock()


def _store() -> Path:
    return Path(os.environ.get("RESTAURANT_BOOKINGS", "var/bookings.json"))


def _load() -> dict[str, dict]:
    try:
        return json.loads(_store().read_text())
    except (OSError, ValueError):
        return {}


def _save(bookings: dict[str, dict]) -> None:
    path = _store()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(bookings, indent=2))
    tmp.replace(path)


def find_restaurants(cuisine: str = "") -> list[dict]:
    """Find restaurants by cuisine (italian, japanese, vegetarian or mexican; empty for all):
    their names, areas and opening times."""
    return [r for r in RESTAURANTS if cuisine.lower() in r["cuisine"]] or RESTAURANTS


def book_table(name: str, party_size: int, day: str, time: str, restaurant: str = "Luigi's Trattoria") -> dict:
    """Book a table. day is like 'tomorrow' or 'friday'; time is like '7 pm'."""
    if not 1 <= party_size <= 12:
        raise ValueError("we can seat parties of 1 to 12")
    booking = {"id": uuid.uuid4().hex[:6], "name": name, "party_size": party_size,
               "day": day, "time": time, "restaurant": restaurant}
    with _lock:
        bookings = _load()
        bookings[booking["id"]] = booking
        _save(bookings)
    return {"booked": True, **booking}


def cancel_booking(name: str) -> dict:
    """Cancel the bookings made under a name."""
    with _lock:
        bookings = _load()
        cancelled = [b for b in bookings.values() if b["name"].lower() == name.lower()]
        for b in cancelled:
            del bookings[b["id"]]
        _save(bookings)
    return {"cancelled": len(cancelled), "bookings": cancelled}
