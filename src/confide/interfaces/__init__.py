"""Interfaces: CLI, Python SDK (and later REST API and web console)."""
