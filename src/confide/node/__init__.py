"""Node layer: one org service beside its data (storage, connectors, API, peers, enforcement)."""
