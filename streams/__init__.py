"""streams layer (depends on twin)."""

__all__: list[str] = []
