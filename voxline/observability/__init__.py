"""Observability: Prometheus metrics, OpenTelemetry traces, JSON logs, fed by the call host's events."""
