"""DT-BSM: how far the twin's MDP is from the real network's (``docs/fidelity.md``, spec ``dt-bsm.md``).

The metric d(x, y) between a real state x and a twin state y is the fixed point of
``F(d)(x, y) = max_a [ |R(x,a) − R'(y,a)| + γ·W1_d(P(·|x,a), P'(·|y,a)) ]``; with one shared state
encoder the twin's states are the real ones and the scalar DT-BSM is the diagonal's max.

- ``dt_bsm``: the exact metric of two finite MDPs, certified within ``tol`` (fast compiled solver,
  or the plain POT loop as reference); ``compile_kernels`` compiles or loads it once.
- ``tv_bound``, ``tv_closed_form``: total-variation upper bounds of the diagonal, no transport.
- ``TransitionCounts``, ``EmpiricalModel``, ``dt_bsm_interval``: the metric from samples, with
  confidence radii and an interval that brackets the true metric; ``samples_gbsm``,
  ``samples_uniform``: how many samples per (x, a) are enough.
- ``regret_bound``, ``resync_threshold``: what a given DT-BSM means for a twin-trained policy.
- ``StateEncoder``, ``ACTIONS``: cell-periods as states, CM changes as actions, throughput as
  reward; ``FidelityEstimator``: the streaming per-cluster estimator (counts, interval, trigger
  hysteresis, state); ``trust``/``TrustVerdict``: the trust gate (``twin.prediction.fidelity`` runs
  them in the worker).

>>> res = dt_bsm([[0.0, 1.0]], [[[1.0], [1.0]]], [[0.5, 1.0]], [[[1.0], [1.0]]], gamma=0.9, tol=1e-9)
>>> round(res.value, 6)  # spec §8 Example 4: one state, two self-loop actions, d = 0.5/(1 − 0.9)
5.0
"""

from .empirical import EmpiricalModel, TransitionCounts, confidence_radii
from .encoder import ACTIONS, StateEncoder
from .errors import FidelityInputError
from .exact import DTBSMResult, dt_bsm
from .interval import DTBSMInterval, dt_bsm_interval
from .kernels import compile_kernels
from .regret import regret_bound, resync_threshold
from .samples import samples_gbsm, samples_uniform
from .simplex import transport_cost, transport_plan
from .stream import FidelityEstimator, TrustVerdict, trust
from .synthetic import random_mdp_pair
from .tv import TVBound, tv_bound, tv_closed_form

__all__ = [
    "ACTIONS",
    "DTBSMInterval",
    "DTBSMResult",
    "EmpiricalModel",
    "FidelityEstimator",
    "FidelityInputError",
    "StateEncoder",
    "TVBound",
    "TransitionCounts",
    "TrustVerdict",
    "compile_kernels",
    "confidence_radii",
    "dt_bsm",
    "dt_bsm_interval",
    "random_mdp_pair",
    "regret_bound",
    "resync_threshold",
    "samples_gbsm",
    "samples_uniform",
    "transport_cost",
    "transport_plan",
    "trust",
    "tv_bound",
    "tv_closed_form",
]
