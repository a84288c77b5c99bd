"""The mirror: per-cell and per-cluster state of the network, built from telemetry.

A ``CellMirror`` holds one cell's CM (latest observation wins), its PM series per granularity
period and its UE measurement statistics (``MrStats``); a ``ClusterMirror`` holds the cells of one
cluster (one worker owns it) and its managed objects that carry no cell key. ``CheckpointStore``
writes a partition's clusters together with the next offset to consume (``PartitionState``), so
a restart resumes exactly; ``mirror_view`` is the read-only JSON view of checkpointed clusters.
"""

from twin.mirror.cell import CellMirror
from twin.mirror.cluster import ClusterMirror
from twin.mirror.mr_stats import MrStats
from twin.mirror.store import CheckpointStore, PartitionState
from twin.mirror.view import mirror_view

__all__ = ["CellMirror", "CheckpointStore", "ClusterMirror", "MrStats", "PartitionState", "mirror_view"]
