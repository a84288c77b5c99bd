"""Compiled sweeps of the fast DT-BSM solver (numba, cached on disk, two threads over row blocks).

One generalised operator serves the plain metric and both ends of the interval metric (§9.2):

    T(d)(x, y) = min(cap, max_a [ rterm(x,y,a) + γ · max(0, W1_d(P(·|x,a), P'(·|y,a)) + shift(x,y,a)) ])
    rterm = max(0, |R(x,a) − R'(y,a)| + cr[x,a] + ct[y,a]),   shift = sr[x,a] + st[y,a]

With cr = ct = sr = st = 0 and cap = inf it is the operator F of §2.1. Every W1 is a transport
problem between two supports; problem (x, y, a) keeps its basis (cells ``bi``/``bj``, flows
``fl``) in the slice ``boff[(x*S + y)*A + a] : +m+n−1`` of flat arrays, across sweeps.

- ``exact_sweep``: T applied exactly. Lazy actions (§3.4 item 3): the stored coupling's cost is an
  upper bound of W1, so an action whose bound cannot beat the best exact value of the pair is
  skipped; the others are re-solved from their stored basis, best bound first.
- ``evaluation_sweep``: T with every W1 replaced by the cost of the stored coupling (the couplings
  are kept fixed): the cheap sweeps of coupling (modified policy) iteration (§3.4 item 4).

Both read ``dread`` and write ``dwrite``; passing the same array gives Gauss–Seidel sweeps. The
loop over real states x runs in a numba ``prange`` (threads over row blocks, §3.4 item 6): in
Gauss–Seidel mode a thread may read entries another thread already updated, which the certified
stopping rule allows (each entry is computed exactly from values that are either old or new).

>>> seconds = compile_kernels()  # compiles once, then loads from the on-disk cache
>>> seconds >= 0.0
True
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit, prange

from .simplex import _potentials, northwest_corner, solve_transport

__all__ = ["compile_kernels", "evaluation_sweep", "exact_sweep", "init_bases", "ready"]

_ = _potentials  # compiled as part of solve_transport


@njit(cache=True, parallel=True)
def init_bases(S: int, A: int, rptr: np.ndarray, ridx: np.ndarray, rw: np.ndarray,
               tptr: np.ndarray, tidx: np.ndarray, tw: np.ndarray, boff: np.ndarray, bi: np.ndarray,
               bj: np.ndarray, fl: np.ndarray, gidx: np.ndarray) -> None:
    """North-west-corner basis for every problem (x, y, a), and the flat index x'*S + y' of each cell."""
    for x in prange(S):
        for y in range(S):
            for a in range(A):
                ra = x * A + a
                ta = y * A + a
                r0 = rptr[ra]
                r1 = rptr[ra + 1]
                t0 = tptr[ta]
                t1 = tptr[ta + 1]
                o = boff[(x * S + y) * A + a]
                nb = (r1 - r0) + (t1 - t0) - 1
                northwest_corner(rw[r0:r1], tw[t0:t1], bi[o:o + nb], bj[o:o + nb], fl[o:o + nb])
                for k in range(nb):
                    gidx[o + k] = ridx[r0 + bi[o + k]] * S + tidx[t0 + bj[o + k]]


@njit(cache=True, inline="always")
def _pair_terms(x: int, y: int, a: int, S: int, A: int, df: np.ndarray,
                Rr: np.ndarray, Rt: np.ndarray, cr: np.ndarray, ct: np.ndarray, sr: np.ndarray, st: np.ndarray,
                rptr: np.ndarray, tptr: np.ndarray, boff: np.ndarray, fl: np.ndarray,
                gidx: np.ndarray) -> tuple[float, float, float]:
    """For the state pair (x, y) under action a: the reward gap with its radii (clipped at 0), the
    transition radii, and the cost of the stored coupling at d (``df``, d flattened): the terms
    both sweeps build T from."""
    ra = x * A + a
    ta = y * A + a
    m = rptr[ra + 1] - rptr[ra]
    n = tptr[ta + 1] - tptr[ta]
    o = boff[(x * S + y) * A + a]
    cost = 0.0
    for k in range(o, o + m + n - 1):
        cost += fl[k] * df[gidx[k]]
    g = abs(Rr[x, a] - Rt[y, a]) + cr[x, a] + ct[y, a]
    if g < 0.0:
        g = 0.0
    return g, sr[x, a] + st[y, a], cost


@njit(cache=True, parallel=True)
def exact_sweep(S: int, A: int, gamma: float, cap: float,
                dread: np.ndarray, dwrite: np.ndarray,
                Rr: np.ndarray, Rt: np.ndarray, cr: np.ndarray, ct: np.ndarray, sr: np.ndarray, st: np.ndarray,
                rptr: np.ndarray, ridx: np.ndarray, tptr: np.ndarray, tidx: np.ndarray,
                boff: np.ndarray, bi: np.ndarray, bj: np.ndarray, fl: np.ndarray, gidx: np.ndarray,
                mmax: int, nmax: int, eps: float, max_pivots: int,
                delta_row: np.ndarray, lp_row: np.ndarray, piv_row: np.ndarray, cut_row: np.ndarray,
                fail_row: np.ndarray) -> None:
    """One improvement sweep of T (see the module doc); per real state x: the largest change of an
    entry ``delta_row[x]``, the transport problems solved ``lp_row[x]``, their pivots
    ``piv_row[x]``, the solves stopped at ``max_pivots`` before optimality ``cut_row[x]`` (the
    sweep is exact when there are none) and failures ``fail_row[x]``."""
    df = dread.reshape(S * S)
    for x in prange(S):
        nn = mmax + nmax
        C = np.empty((mmax, nmax))
        u = np.empty(mmax)
        v = np.empty(nmax)
        iw = np.empty(2 * nn + 1 + 2 * (nn - 1) + 8 * nn, np.int64)
        fw = np.empty(nn)
        ub = np.empty(A)
        rt = np.empty(A)
        sh = np.empty(A)
        done = np.zeros(A, np.bool_)
        dx = 0.0
        nlp = 0
        npiv = 0
        ncut = 0
        nfail = 0
        for y in range(S):
            for a in range(A):
                g, s, cost = _pair_terms(x, y, a, S, A, df, Rr, Rt, cr, ct, sr, st, rptr, tptr, boff, fl, gidx)
                w = cost + s
                rt[a] = g
                sh[a] = s
                ub[a] = g + gamma * (w if w > 0.0 else 0.0)
                done[a] = False
            best = -1.0
            while True:
                ia = -1
                top = -np.inf
                for a in range(A):
                    if not done[a] and ub[a] > top:
                        top = ub[a]
                        ia = a
                if ia < 0 or top <= best:
                    break
                done[ia] = True
                ra = x * A + ia
                ta = y * A + ia
                r0 = rptr[ra]
                m = rptr[ra + 1] - r0
                t0 = tptr[ta]
                n = tptr[ta + 1] - t0
                o = boff[(x * S + y) * A + ia]
                nb = m + n - 1
                for i in range(m):
                    gx = ridx[r0 + i]
                    for j in range(n):
                        C[i, j] = dread[gx, tidx[t0 + j]]
                w1, piv, status = solve_transport(m, n, C, bi[o:o + nb], bj[o:o + nb], fl[o:o + nb], u, v, iw, fw,
                                                  eps, max_pivots)
                nlp += 1
                if piv > 0:
                    npiv += piv
                    for k in range(o, o + nb):
                        gidx[k] = ridx[r0 + bi[k]] * S + tidx[t0 + bj[k]]
                if status == 1:
                    ncut += 1
                elif status == 2:
                    nfail += 1
                w = w1 + sh[ia]
                val = rt[ia] + gamma * (w if w > 0.0 else 0.0)
                if val > best:
                    best = val
            new = best if best < cap else cap
            diff = abs(new - dread[x, y])
            if diff > dx:
                dx = diff
            dwrite[x, y] = new
        delta_row[x] = dx
        lp_row[x] = nlp
        piv_row[x] = npiv
        cut_row[x] = ncut
        fail_row[x] = nfail


@njit(cache=True, parallel=True)
def evaluation_sweep(S: int, A: int, gamma: float, cap: float,
                     dread: np.ndarray, dwrite: np.ndarray,
                     Rr: np.ndarray, Rt: np.ndarray, cr: np.ndarray, ct: np.ndarray, sr: np.ndarray,
                     st: np.ndarray, rptr: np.ndarray, tptr: np.ndarray,
                     boff: np.ndarray, fl: np.ndarray, gidx: np.ndarray, delta_row: np.ndarray) -> None:
    """One sweep of T with the stored couplings kept fixed (their costs re-evaluated at d)."""
    df = dread.reshape(S * S)
    for x in prange(S):
        dx = 0.0
        for y in range(S):
            best = -1.0
            for a in range(A):
                g, s, cost = _pair_terms(x, y, a, S, A, df, Rr, Rt, cr, ct, sr, st, rptr, tptr, boff, fl, gidx)
                w = cost + s
                val = g + gamma * (w if w > 0.0 else 0.0)
                if val > best:
                    best = val
            new = best if best < cap else cap
            diff = abs(new - dread[x, y])
            if diff > dx:
                dx = diff
            dwrite[x, y] = new
        delta_row[x] = dx


_ready = False


def ready() -> bool:
    """True once ``compile_kernels`` has run in this process."""
    return _ready


def compile_kernels() -> float:
    """Compile (first time ever) or load from the disk cache (later processes) every kernel of the
    fast solver and the TV bound; returns the seconds it took, which callers report apart from
    computation time (``dt_bsm`` calls it on first use and reports it as ``compile_s``)."""
    global _ready
    from .tv import _tv_iterate  # the TV kernel lives with the TV bound

    t0 = time.perf_counter()
    S, A = 2, 1
    P = np.array([[[0.5, 0.5]], [[1.0, 0.0]]])
    ptr = np.array([0, 2, 3], np.int64)
    idx = np.array([0, 1, 0], np.int32)
    w = P.reshape(2, 2)[[0, 0, 1], [0, 1, 0]].copy()
    sizes = np.array([3, 2, 2, 1], np.int64)
    boff = np.zeros(5, np.int64)
    np.cumsum(sizes, out=boff[1:])
    bi = np.empty(boff[-1], np.int16)
    bj = np.empty(boff[-1], np.int16)
    fl = np.empty(boff[-1])
    gidx = np.empty(boff[-1], np.int32)
    init_bases(S, A, ptr, idx, w, ptr, idx, w, boff, bi, bj, fl, gidx)
    R = np.array([[0.0], [1.0]])
    z = np.zeros((S, A))
    d = np.zeros((S, S))
    rows = np.zeros(S)
    counts = np.zeros(S, np.int64)
    exact_sweep(S, A, 0.5, np.inf, d, d, R, R, z, z, z, z, ptr, idx, ptr, idx, boff, bi, bj, fl, gidx, 2, 2, 1e-12,
                10, rows, counts, counts.copy(), counts.copy(), counts.copy())
    evaluation_sweep(S, A, 0.5, np.inf, d, d, R, R, z, z, z, z, ptr, ptr, boff, fl, gidx, rows)
    _tv_iterate(S, A, 0.5, 1.0, R, z, ptr, idx, w, np.zeros(S), 1e-9, 10)
    _ready = True
    return time.perf_counter() - t0
