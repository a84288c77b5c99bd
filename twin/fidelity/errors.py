"""The error the fidelity library raises for inputs it cannot use.

It is a ``twin.errors.TwinError`` (so a ``ValueError``) whose message names the argument and the
offending value or index, so a caller can fix the input without reading the code.

>>> issubclass(FidelityInputError, ValueError)
True
"""

from __future__ import annotations

from twin.errors import TwinError

__all__ = ["FidelityInputError"]


class FidelityInputError(TwinError):
    """An argument of a fidelity function has the wrong shape, value or type."""
