"""Scenarios: data generators and end-to-end flows built on the lower layers."""
