"""Tools of the orchestration test agents."""


def opening_hours() -> dict:
    """When the restaurant is open."""
    return {"open": "noon", "close": "eleven pm"}


def book_table(name: str, party_size: int, time: str) -> dict:
    """Book a table."""
    return {"booked": True, "id": "B-1", "name": name, "party_size": party_size, "time": time}
