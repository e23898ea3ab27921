"""Shared fixtures: real Postgres (with pgvector) and Redis servers, started once."""

pytest_plugins = ["tests.services"]


def pytest_collection_modifyitems(items):  # type: ignore[no-untyped-def]
    """Files that run the real models first: ``make test``'s two processes each take
    half the tests and, once done, take tests from the end of the other's, so the long
    ones start early and the short ones fill the end."""
    heavy = {item.path for item in items if item.get_closest_marker("models") or item.get_closest_marker("browser")}
    items.sort(key=lambda item: item.path not in heavy)  # stable: a file's tests stay in order
