"""cards layer."""
