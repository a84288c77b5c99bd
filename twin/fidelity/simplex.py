"""Exact transportation simplex for the tiny W1 problems of the metric (compiled with numba).

Why our own solver and not ``ot.emd2``: each W1 of the metric is a transport problem between two
supports of a few states, solved once per (x, y, a) per sweep. POT's Python wrapper costs ~140 µs a
call; this solver, compiled and called from compiled loops, keeps each problem's last optimal basis
(a spanning tree of the m x n bipartite graph, m + n − 1 cells) and re-solves from it. The
marginals never change between sweeps, so the old basis stays primal feasible and a re-solve is
usually one dual update and one pricing pass with no pivot (§3.4 item 2).

Method: the primal transportation simplex (network simplex on the bipartite graph). Potentials
u_i + v_j = C_ij on basic cells are found by a breadth-first walk of the tree; the entering cell
is the most negative reduced cost (Dantzig), switching to Bland's rule (smallest index enters,
smallest index leaves among ties) after ``BLAND_AFTER`` pivots so degenerate problems cannot cycle.
A solution is optimal when every reduced cost is >= −eps, so its cost is within eps of the
optimum (the shifted potentials (u, v − eps) are dual feasible) and, being a feasible coupling's
cost, never below it.

>>> p = np.array([0.5, 0.5]); q = np.array([0.25, 0.75])
>>> C = np.array([[0.0, 1.0], [1.0, 0.0]])
>>> round(transport_cost(p, q, C), 12)
0.25
>>> transport_cost(p, np.array([0.5, 0.6]), C)
Traceback (most recent call last):
...
twin.fidelity.errors.FidelityInputError: p and q must have equal sums, got 1 and 1.1
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from .errors import FidelityInputError

__all__ = ["BLAND_AFTER", "MAX_PIVOTS", "northwest_corner", "solve_transport", "transport_cost", "transport_plan"]

BLAND_AFTER = 50
"""Pivots of one solve after which the entering/leaving rule becomes Bland's (anti-cycling)."""
MAX_PIVOTS = 20000
"""Pivots of one solve after which it gives up (reported as a failure; never seen in practice)."""


@njit(cache=True, nogil=True)
def northwest_corner(p: np.ndarray, q: np.ndarray, bi: np.ndarray, bj: np.ndarray,
                     fl: np.ndarray) -> None:
    """Fill (bi, bj, fl) [m + n − 1] with the north-west-corner basis of supplies p [m], demands q [n].

    The staircase path from (0, 0) to (m − 1, n − 1) visits every row and column once, so it is a
    spanning tree even when a step allocates 0 (degenerate); flows are >= 0.
    """
    m = p.shape[0]
    n = q.shape[0]
    i = 0
    j = 0
    s = p[0]
    t = q[0]
    for k in range(m + n - 1):
        x = s if s < t else t
        if x < 0.0:
            x = 0.0
        bi[k] = i
        bj[k] = j
        fl[k] = x
        s -= x
        t -= x
        if i == m - 1:
            j += 1
            if j < n:
                t = q[j]
        elif j == n - 1 or s <= t:
            i += 1
            s = p[i]
        else:
            j += 1
            t = q[j]


@njit(cache=True, nogil=True)
def _potentials(m: int, n: int, C: np.ndarray, bi: np.ndarray, bj: np.ndarray,
                u: np.ndarray, v: np.ndarray, iw: np.ndarray) -> bool:
    """u [m], v [n] with u_i + v_j = C_ij on the basic cells, u_0 = 0; parent/edge/depth of each
    tree node (rows 0..m−1, columns m..m+n−1) rooted at row 0 go into ``iw``. False when the basis
    is not a spanning tree."""
    nn = m + n
    nb = nn - 1
    deg = iw[0:nn]
    start = iw[nn:2 * nn + 1]
    adj = iw[2 * nn + 1:2 * nn + 1 + 2 * nb]
    base = 2 * nn + 1 + 2 * nb
    parent = iw[base:base + nn]
    pedge = iw[base + nn:base + 2 * nn]
    depth = iw[base + 2 * nn:base + 3 * nn]
    queue = iw[base + 3 * nn:base + 4 * nn]
    for k in range(nn):
        deg[k] = 0
    for k in range(nb):
        deg[bi[k]] += 1
        deg[m + bj[k]] += 1
    start[0] = 0
    for k in range(nn):
        start[k + 1] = start[k] + deg[k]
        deg[k] = start[k]
    for k in range(nb):
        r = bi[k]
        c = m + bj[k]
        adj[deg[r]] = k
        deg[r] += 1
        adj[deg[c]] = k
        deg[c] += 1
    for k in range(nn):
        depth[k] = -1
    depth[0] = 0
    parent[0] = -1
    pedge[0] = -1
    u[0] = 0.0
    queue[0] = 0
    head = 0
    tail = 1
    while head < tail:
        node = queue[head]
        head += 1
        for t in range(start[node], start[node + 1]):
            k = adj[t]
            other = m + bj[k] if node < m else bi[k]
            if depth[other] < 0:
                depth[other] = depth[node] + 1
                parent[other] = node
                pedge[other] = k
                if other < m:
                    u[other] = C[other, bj[k]] - v[bj[k]]
                else:
                    v[other - m] = C[bi[k], other - m] - u[bi[k]]
                queue[tail] = other
                tail += 1
    return tail == nn


def workspace_size(m: int, n: int) -> int:
    """Length of the int64 workspace ``solve_transport`` needs for supports up to m x n."""
    nn = m + n
    return 2 * nn + 1 + 2 * (nn - 1) + 6 * nn + 2 * nn


@njit(cache=True, nogil=True)
def _ordered_potentials(m: int, n: int, C: np.ndarray, bi: np.ndarray, bj: np.ndarray,
                        u: np.ndarray, v: np.ndarray, iw: np.ndarray) -> bool:
    """Potentials in one pass when the cells are in tree order (each attaches one new row or column
    to the tree grown from row 0, as ``northwest_corner`` and every solve leave them); False when
    they are not (the caller then walks the tree)."""
    nn = m + n
    seen = iw[0:nn]
    for k in range(nn):
        seen[k] = 0
    seen[0] = 1
    u[0] = 0.0
    for k in range(nn - 1):
        i = bi[k]
        j = bj[k]
        if seen[i] == 1:
            if seen[m + j] == 1:
                return False
            v[j] = C[i, j] - u[i]
            seen[m + j] = 1
        elif seen[m + j] == 1:
            u[i] = C[i, j] - v[j]
            seen[i] = 1
        else:
            return False
    return True


@njit(cache=True, nogil=True)
def solve_transport(m: int, n: int, C: np.ndarray, bi: np.ndarray, bj: np.ndarray,
                    fl: np.ndarray, u: np.ndarray, v: np.ndarray, iw: np.ndarray, fw: np.ndarray,
                    eps: float, max_pivots: int) -> tuple[float, int, int]:
    """Optimise the basis (bi, bj, fl) [m + n − 1] in place for costs C [m, n] (only C[:m, :n] is
    read); returns (cost, pivots, status): status 0 optimal, 1 stopped after ``max_pivots`` pivots
    (a feasible coupling no costlier than the one given), 2 failed. The basis must be a feasible
    spanning tree (``northwest_corner``, or a previous solve with the same marginals); the cells
    are left in tree order. ``fw``: float workspace of m + n."""
    nn = m + n
    nb = nn - 1
    base = 2 * nn + 1 + 2 * nb
    parent = iw[base:base + nn]
    pedge = iw[base + nn:base + 2 * nn]
    depth = iw[base + 2 * nn:base + 3 * nn]
    queue = iw[base + 3 * nn:base + 4 * nn]
    cyc = iw[base + 4 * nn:base + 5 * nn]
    sgn = iw[base + 5 * nn:base + 6 * nn]
    tmp_i = iw[base + 6 * nn:base + 7 * nn]
    tmp_j = iw[base + 7 * nn:base + 8 * nn]
    pivots = 0
    status = 0
    walked = False
    if not _ordered_potentials(m, n, C, bi, bj, u, v, iw):
        if not _potentials(m, n, C, bi, bj, u, v, iw):
            return 0.0, 0, 2
        walked = True
    while True:
        ie = -1
        je = -1
        if pivots < BLAND_AFTER:
            best = -eps
            for i in range(m):
                ui = u[i]
                for j in range(n):
                    r = C[i, j] - ui - v[j]
                    if r < best:
                        best = r
                        ie = i
                        je = j
        else:
            for i in range(m):
                ui = u[i]
                for j in range(n):
                    if C[i, j] - ui - v[j] < -eps:
                        ie = i
                        je = j
                        break
                if ie >= 0:
                    break
        if ie < 0:
            break
        if pivots >= max_pivots:
            status = 1
            break
        if not walked:
            _potentials(m, n, C, bi, bj, u, v, iw)
        bland = pivots >= BLAND_AFTER
        a = ie
        b = m + je
        sa = 0
        sb = 0
        ncyc = 0
        theta = np.inf
        leave = -1
        leave_idx = 1 << 62
        while a != b:
            if depth[a] >= depth[b]:
                k = pedge[a]
                minus = sa % 2 == 0
                sa += 1
                a = parent[a]
            else:
                k = pedge[b]
                minus = sb % 2 == 0
                sb += 1
                b = parent[b]
            cyc[ncyc] = k
            sgn[ncyc] = 1 if minus else 0
            ncyc += 1
            if minus:
                f = fl[k]
                idx = bi[k] * n + bj[k]
                if f < theta or (bland and f == theta and idx < leave_idx):
                    theta = f
                    leave = k
                    leave_idx = idx
        if theta < 0.0:
            theta = 0.0
        for t in range(ncyc):
            k = cyc[t]
            if sgn[t] == 1:
                f = fl[k] - theta
                fl[k] = f if f > 0.0 else 0.0
            else:
                fl[k] += theta
        bi[leave] = ie
        bj[leave] = je
        fl[leave] = theta
        pivots += 1
        if not _potentials(m, n, C, bi, bj, u, v, iw):
            return 0.0, pivots, 2
        walked = True
    if walked:
        # leave the cells in breadth-first tree order so the next solve needs one pass for potentials
        for t in range(nb):
            k = pedge[queue[t + 1]]
            tmp_i[t] = bi[k]
            tmp_j[t] = bj[k]
            fw[t] = fl[k]
        for t in range(nb):
            bi[t] = tmp_i[t]
            bj[t] = tmp_j[t]
            fl[t] = fw[t]
    cost = 0.0
    for k in range(nb):
        cost += fl[k] * C[bi[k], bj[k]]
    return cost, pivots, status


@njit(cache=True, nogil=True)
def _solve_dense(p: np.ndarray, q: np.ndarray, C: np.ndarray, eps: float,
                 ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, int, bool]:
    m = p.shape[0]
    n = q.shape[0]
    nb = m + n - 1
    bi = np.empty(nb, np.int16)
    bj = np.empty(nb, np.int16)
    fl = np.empty(nb, np.float64)
    northwest_corner(p, q, bi, bj, fl)
    nn = m + n
    iw = np.empty(2 * nn + 1 + 2 * (nn - 1) + 8 * nn, np.int64)
    u = np.empty(m)
    v = np.empty(n)
    fw = np.empty(nn)
    cost, pivots, status = solve_transport(m, n, C, bi, bj, fl, u, v, iw, fw, eps, MAX_PIVOTS)
    return cost, bi, bj, fl, pivots, status == 0


def _check_problem(p: npt.ArrayLike, q: npt.ArrayLike, cost: npt.ArrayLike
                   ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    pa = np.ascontiguousarray(p, dtype=np.float64)
    qa = np.ascontiguousarray(q, dtype=np.float64)
    Ca = np.ascontiguousarray(cost, dtype=np.float64)
    if pa.ndim != 1 or qa.ndim != 1 or len(pa) == 0 or len(qa) == 0:
        raise FidelityInputError(f"p and q must be non-empty 1-D arrays, got shapes {pa.shape} and {qa.shape}")
    if Ca.shape != (len(pa), len(qa)):
        raise FidelityInputError(f"cost must have shape {(len(pa), len(qa))}, got {Ca.shape}")
    for name, arr in (("p", pa), ("q", qa), ("cost", Ca)):
        if not np.isfinite(arr).all():
            raise FidelityInputError(f"{name} must be finite")
    if (pa < 0).any() or (qa < 0).any():
        raise FidelityInputError("p and q must be >= 0")
    if abs(pa.sum() - qa.sum()) > 1e-9 * max(1.0, pa.sum()):
        raise FidelityInputError(f"p and q must have equal sums, got {pa.sum():.10g} and {qa.sum():.10g}")
    return pa, qa, Ca


def transport_plan(p: npt.ArrayLike, q: npt.ArrayLike, cost: npt.ArrayLike
                   ) -> tuple[float, npt.NDArray[np.float64]]:
    """(optimal cost, optimal coupling [m, n]) of moving p [m] onto q [n] at ground cost [m, n].

    >>> c, plan = transport_plan([0.5, 0.5], [1.0], [[1.0], [3.0]])
    >>> round(c, 12), plan.tolist()
    (2.0, [[0.5], [0.5]])
    """
    pa, qa, Ca = _check_problem(p, q, cost)
    eps = 1e-13 * max(1.0, float(np.abs(Ca).max()))
    c, bi, bj, fl, _pivots, ok = _solve_dense(pa, qa, Ca, eps)
    if not ok:  # pragma: no cover - the solver has never failed; kept as a loud guard
        raise RuntimeError("transportation simplex did not converge")
    plan = np.zeros(Ca.shape)
    np.add.at(plan, (bi.astype(np.int64), bj.astype(np.int64)), fl)
    return float(c), plan


def transport_cost(p: npt.ArrayLike, q: npt.ArrayLike, cost: npt.ArrayLike) -> float:
    """The optimal transport cost W1 between p [m] and q [n] (equal sums) at ground cost [m, n]."""
    return transport_plan(p, q, cost)[0]
