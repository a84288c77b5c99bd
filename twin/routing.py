"""Which cluster a cell belongs to, from the topology configuration.

The twin simulates whole neighbourhoods, so telemetry is routed by cluster: the worker re-keys
it that way (one worker owns whole clusters) and ``twin.Twin.ingest`` applies it that way in memory.
A cell the topology does not list belongs to no cluster: its telemetry is held per cell
(``twin.mirror.holding``) under a key of its own, so held cells spread over the partitions.

>>> from twin.config import TopologySettings
>>> route = ClusterRouter(TopologySettings.model_validate(
...     {"clusters": [{"id": "north", "cells": ["nr:00101-000000101"]}]}))
>>> route("nr:00101-000000101"), route("nr:00101-000000999"), route.all_clusters()
('north', None, ['north'])
>>> holding_key("nr:00101-000000999", "ManagedElement=9"), holding_key(None, "ManagedElement=9")
('nr:00101-000000999', 'dn:ManagedElement=9')
>>> route.cluster_or_holding("nr:00101-000000999", None)
'unassigned/nr:00101-000000999'
"""

from __future__ import annotations

from twin.config import TopologySettings
from twin.mirror.identity import is_derived, node_key

__all__ = ["HOLDING_PREFIX", "ClusterRouter", "holding_key"]

#: prefix of the re-keyed topic's envelope keys (``"cl"``) for held telemetry; no cluster id starts so
HOLDING_PREFIX = "unassigned/"


def holding_key(cell_key: str | None, dn: str | None) -> str:
    """The key telemetry outside the topology is held under: the cell key; but records that wait
    for their identity (a key the PM file reader derived from the DN, or CM without a key) are held
    by node, ``dn:ManagedElement=<id>`` (``twin.mirror.identity``), where the node's CM resolves them.

    >>> holding_key("nr:00101-da43a8001", "SubNetwork=X,ManagedElement=gnb-001,GNBDUFunction=1,NRCellDU=1")
    'dn:ManagedElement=gnb-001'
    """
    if dn is None:
        return cell_key if cell_key is not None else "dn:None"
    if cell_key is None or is_derived(cell_key, dn):
        return node_key(dn)
    return cell_key


class ClusterRouter:
    """cell key -> cluster id, from the topology config; ``None`` for cells it does not list."""

    def __init__(self, topology: TopologySettings) -> None:
        self._owner = topology.cluster_of()
        self._clusters = sorted({c.id for c in topology.clusters})

    def all_clusters(self) -> list[str]:
        return list(self._clusters)

    def __call__(self, cell_key: str | None) -> str | None:
        if cell_key is None:
            return None
        return self._owner.get(cell_key)

    def cluster_or_holding(self, cell_key: str | None, dn: str | None) -> str:
        """The cluster of a record, else ``unassigned/<holding key>``: the envelope key its
        telemetry is held under (one key per cell, so held cells spread over the partitions)."""
        cluster = self(cell_key)
        return cluster if cluster is not None else HOLDING_PREFIX + holding_key(cell_key, dn)
