"""Shared fixtures: real Postgres (with pgvector) and Redis servers, started once."""

pytest_plugins = ["tests.services"]
