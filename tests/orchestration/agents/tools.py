"""Tools of the orchestration test agents."""


def opening_hours() -> dict:
    """When the restaurant is open."""
    return {"open": "noon", "close": "eleven pm"}


def book_table(name: str, party_size: int, time: str) -> dict:
    """Book a table."""
    return {"booked": True, "id": "B-1", "name": name, "party_size": party_size, "time": time}


def lookup(order_id: int) -> dict:
    """Look up an order."""
    return {"order_id": order_id, "status": "lost" if order_id == 13 else "shipped"}


def slow(order_id: int) -> dict:
    """Takes its time."""
    import time

    time.sleep(2.5)
    return {"order_id": order_id, "status": "late result"}
