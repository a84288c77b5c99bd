"""replay layer (depends on twin)."""
