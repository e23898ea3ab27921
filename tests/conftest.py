"""Shared fixtures: real Postgres (with pgvector) and Redis servers, started once."""

pytest_plugins = ["tests.services"]


def pytest_collection_modifyitems(items):  # type: ignore[no-untyped-def]
    """Files that run the real models first: ``make test`` hands whole files to two
    processes as they free up, so the long files start early and the short ones fill
    the end instead of one long file running alone at the end."""
    heavy = {item.path for item in items if item.get_closest_marker("models") or item.get_closest_marker("browser")}
    items.sort(key=lambda item: item.path not in heavy)  # stable: a file's tests stay in order
