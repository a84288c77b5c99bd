"""``twin bench bisim``: exact DT-BSM, TV bounds and cold start on random sparse MDP pairs (§3.4).

The pair is ``random_mdp_pair``: 3–10 successor states per row, rewards in [0, 1] (so R̄ = 1 and
d_max = 1/(1 − γ)), the twin a perturbed copy. The exact metric is certified within
1e-3·R̄/(1 − γ) (``tol_rel``). ``exact_s`` uses ``threads`` numba threads (default 1), and the
same call is timed with 2 threads (1 when ``threads`` > 1) as ``exact_s_2_threads`` (or
``exact_s_1_threads``). Timings are the best of ``repeats`` calls in this process after
``compile_kernels`` (its seconds are ``compile_s``: compiling on the very first run, loading from
the on-disk cache afterwards). ``cold_start_s`` is measured in a fresh Python process with the disk
cache warm: importing ``twin.fidelity`` plus the first ``dt_bsm`` call (which loads the kernels).
The POT reference (one ``ot.emd2`` per (x, y, a), §3.1) runs once on a smaller pair of the same
kind (``pot_states``) next to the fast solver on that same pair.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import numba

from .exact import dt_bsm
from .fast import MAX_THREADS
from .kernels import compile_kernels
from .synthetic import random_mdp_pair
from .tv import tv_bound, tv_closed_form

__all__ = ["cold_start", "run"]

_COLD = """
import json, sys, time
t0 = time.perf_counter()
import twin.fidelity as f
t1 = time.perf_counter()
S, A, gamma, seed, tol = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
pair = f.random_mdp_pair(S, A, seed=seed)
t2 = time.perf_counter()
res = f.dt_bsm(*pair, gamma=gamma, tol=tol, r_max=1.0)
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "call_s": t3 - t2, "compile_s": res.compile_s, "value": res.value}))
"""


def cold_start(states: int, actions: int, gamma: float, seed: int, tol: float) -> dict[str, float]:
    """Import + first call in a fresh interpreter: its own clock (import_s, call_s, of which compile_s
    loads the kernels) and the whole process's wall time (process_s, interpreter start included)."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _COLD, str(states), str(actions), str(gamma), str(seed), str(tol)],
                          capture_output=True, text=True, timeout=600, check=True, stdin=subprocess.DEVNULL)
    out: dict[str, float] = json.loads(done.stdout)
    out["process_s"] = time.perf_counter() - t0
    return out


def _best(fn: Any, repeats: int) -> tuple[float, list[float], Any]:
    samples, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - t0)
    return min(samples), samples, result


def run(states: int = 100, actions: int = 7, gamma: float = 0.9, seed: int = 0, pot_states: int = 20,
        repeats: int = 3, threads: int = 1, tol_rel: float = 1e-3) -> dict[str, Any]:
    """Run the benchmark and return its JSON-able figures (module doc)."""
    compile_s = compile_kernels()
    d_max = 1.0 / (1.0 - gamma)
    tol = tol_rel * d_max
    pair = random_mdp_pair(states, actions, seed=seed)
    other = 2 if threads == 1 else 1

    exact_s, exact_samples, res = _best(lambda: dt_bsm(*pair, gamma=gamma, tol=tol, r_max=1.0, threads=threads),
                                        repeats)
    two_s, two_samples, _ = _best(lambda: dt_bsm(*pair, gamma=gamma, tol=tol, r_max=1.0, threads=other), repeats)
    tv_s, tv_samples, tv = _best(lambda: tv_bound(*pair, gamma=gamma, r_max=1.0), max(10, repeats))
    closed = tv_closed_form(*pair, gamma=gamma, r_max=1.0)
    cold = cold_start(states, actions, gamma, seed, tol)

    small = random_mdp_pair(pot_states, actions, seed=seed)
    fast_small_s, _, fast_small = _best(lambda: dt_bsm(*small, gamma=gamma, tol=tol, r_max=1.0, threads=threads),
                                        repeats)
    t0 = time.perf_counter()
    pot = dt_bsm(*small, gamma=gamma, tol=tol, r_max=1.0, method="pot")
    pot_s = time.perf_counter() - t0

    def r(v: float, digits: int = 4) -> float:
        return round(v, digits)

    return {
        "benchmark": "bisim", "states": states, "actions": actions, "gamma": gamma, "seed": seed,
        "threads": threads, "cores": MAX_THREADS, "threading_layer": numba.threading_layer(), "repeats": repeats,
        "tol": tol, "d_max": d_max,
        "compile_s": r(compile_s), "exact_s": r(exact_s), "exact_s_samples": [r(s) for s in exact_samples],
        f"exact_s_{other}_threads": r(two_s), f"exact_s_{other}_threads_samples": [r(s) for s in two_samples],
        "iterations": res.iterations, "sweeps": res.sweeps, "transport_solves": res.transport_solves,
        "pivots": res.pivots,
        "value": r(res.value, 6), "lower": r(res.lower, 6), "upper": r(res.upper, 6),
        "tv_s": r(tv_s, 5), "tv_s_samples": [r(s, 5) for s in tv_samples], "tv_value": r(tv.upper, 6),
        "tv_iterations": tv.iterations, "tv_ratio": r(tv.upper / res.value if res.value > 0 else float("nan"), 3),
        "tv_closed_form": r(closed, 6),
        "cold_start_s": r(cold["import_s"] + cold["call_s"]), "cold_start_import_s": r(cold["import_s"]),
        "cold_start_call_s": r(cold["call_s"]), "cold_start_load_s": r(cold["compile_s"]),
        "cold_start_process_s": r(cold["process_s"]),
        "pot_states": pot_states, "pot_s": r(pot_s), "pot_iterations": pot.iterations,
        "pot_transport_solves": pot.transport_solves, "fast_s_same_size": r(fast_small_s, 5),
        "pot_ratio": r(pot_s / fast_small_s, 1), "pot_value": r(pot.value, 6),
        "fast_value_same_size": r(fast_small.value, 6),
        "pot_fast_value_diff": abs(pot.value - fast_small.value),
        "pot_fast_intervals_overlap": bool(pot.lower <= fast_small.upper and fast_small.lower <= pot.upper),
    }
