"""adapters layer (depends on twin)."""
