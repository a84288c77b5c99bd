"""Errors the twin's library surface raises: each a ``ValueError`` whose message names the thing.

>>> issubclass(UnknownClusterError, ValueError) and issubclass(UnknownCellError, LookupError)
True
"""

from __future__ import annotations

__all__ = ["NoDataError", "TwinError", "UnknownCellError", "UnknownClusterError"]


class TwinError(ValueError):
    """Base of the errors of ``twin.Twin``."""


class UnknownClusterError(TwinError, LookupError):
    """The twin has no cluster of that id."""


class UnknownCellError(TwinError, LookupError):
    """The cell is not in the twin, not in that cluster, or not simulated."""


class NoDataError(TwinError):
    """The question needs data the mirror does not hold yet (PM periods, CM positions)."""
