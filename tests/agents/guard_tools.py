"""Tools that misbehave, for the guardrail tests."""

import time


def lookup(order_id: int) -> dict:
    """Look up an order by its number."""
    return {"order_id": order_id, "status": "shipped"}


def broken(order_id: int) -> dict:
    """Always fails."""
    raise RuntimeError("the order system is down")


def slow(order_id: int) -> dict:
    """Takes far longer than its timeout."""
    time.sleep(3)
    return {"order_id": order_id}
