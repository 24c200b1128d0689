"""Reference systems built on eventlake's public API only."""
