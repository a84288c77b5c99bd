"""Transition rows as supports only (CSR), the form every solver here works on.

Cellular transition rows are sparse (a few successor states), so each transport problem of the
metric is tiny once restricted to the non-zero entries: this is the main speed-up of §3.2/§3.4.

>>> P = np.array([[[0.5, 0.0, 0.5]], [[0.0, 1.0, 0.0]], [[0.2, 0.3, 0.5]]])
>>> rows = SparseRows.from_dense(P)
>>> rows.support(0, 0)
(array([0, 2], dtype=int32), array([0.5, 0.5]))
>>> rows.sizes().tolist()
[[2], [1], [3]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["SparseRows"]


@dataclass(frozen=True)
class SparseRows:
    """The non-zero entries of P [S, A, S] in CSR form over the S*A rows (row ``x * A + a``).

    ``ptr``: int64 [S*A + 1] row offsets. ``idx``: int32 [nnz] next states, ascending within a
    row. ``w``: float64 [nnz] probabilities (each row sums to 1).
    """

    n_states: int
    n_actions: int
    ptr: npt.NDArray[np.int64]
    idx: npt.NDArray[np.int32]
    w: npt.NDArray[np.float64]

    @classmethod
    def from_dense(cls, P: npt.NDArray[np.float64]) -> SparseRows:
        S, A, _ = P.shape
        flat = P.reshape(S * A, S)
        rows, cols = np.nonzero(flat)
        ptr = np.zeros(S * A + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=S * A), out=ptr[1:])
        return cls(S, A, ptr, cols.astype(np.int32), np.ascontiguousarray(flat[rows, cols]))

    def support(self, x: int, a: int) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float64]]:
        """(next states, probabilities) of row (x, a)."""
        r = x * self.n_actions + a
        lo, hi = self.ptr[r], self.ptr[r + 1]
        return self.idx[lo:hi], self.w[lo:hi]

    def sizes(self) -> npt.NDArray[np.int64]:
        """Support size per (x, a), [S, A]."""
        return np.diff(self.ptr).reshape(self.n_states, self.n_actions)

    @property
    def nnz(self) -> int:
        return int(self.ptr[-1])
