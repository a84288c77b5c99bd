"""Network simulation model of the twin: TR 38.901 propagation, sector antennas with tilt,
load-coupled SINR, link abstraction to throughput, per-cell KPIs under 3GPP PM names, and
millisecond what-ifs. Sionna (``twin.sim.sionna_ref``) is the reference it is tested against.

>>> from twin.sim import Simulator, hex_cluster, TrafficMap
>>> sim = Simulator(hex_cluster(rings=1), TrafficMap(n_ues=300), seed=0)
>>> sorted(sim.evaluate().kpis[sim.cluster.cell_keys[0]])
['CARR.MeanTxPwr', 'DRB.UEThpDl', 'PEE.AvgPower', 'RRC.ConnMean', 'RRU.PrbTotDl']
"""

from twin.sim.kpis import KPI_NAMES
from twin.sim.mirrored import cluster_from_mirror
from twin.sim.propagation import (
    LinkGeometry,
    PrecomputedPropagation,
    PropagationModel,
    StatisticalPropagation,
    los_probability,
    o2i_loss_db,
    pathloss_db,
)
from twin.sim.simulator import ConvergenceWarning, SimConfig, SimResult, Simulator, WhatIfResult
from twin.sim.topology import Cluster, Sector, hex_cluster
from twin.sim.traffic import Hotspot, TrafficMap, UePoints

__all__ = [
    "KPI_NAMES",
    "Cluster",
    "ConvergenceWarning",
    "Hotspot",
    "LinkGeometry",
    "PrecomputedPropagation",
    "PropagationModel",
    "Sector",
    "SimConfig",
    "SimResult",
    "Simulator",
    "StatisticalPropagation",
    "TrafficMap",
    "UePoints",
    "WhatIfResult",
    "cluster_from_mirror",
    "hex_cluster",
    "los_probability",
    "o2i_loss_db",
    "pathloss_db",
]
