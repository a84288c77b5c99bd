"""streams layer (depends on twin)."""
