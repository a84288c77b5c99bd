"""Which cluster a cell belongs to, from the topology configuration.

The twin simulates whole neighbourhoods, so telemetry is routed by cluster: the worker re-keys
it that way (one worker owns whole clusters) and ``twin.Twin.ingest`` applies it that way in memory.

>>> from twin.config import TopologySettings
>>> route = ClusterRouter(TopologySettings.model_validate(
...     {"clusters": [{"id": "north", "cells": ["nr:00101-000000101"]}]}))
>>> route("nr:00101-000000101"), route("nr:00101-000000999"), route.all_clusters()
('north', 'unassigned', ['north', 'unassigned'])
"""

from __future__ import annotations

from twin.config import TopologySettings

__all__ = ["ClusterRouter"]


class ClusterRouter:
    """cell key -> cluster id, from the topology config; unknown cells go to one named cluster."""

    def __init__(self, topology: TopologySettings) -> None:
        self._owner = topology.cluster_of()
        self._default = topology.unassigned_cluster

    def all_clusters(self) -> list[str]:
        return sorted({*self._owner.values(), self._default})

    def __call__(self, cell_key: str | None) -> str:
        if cell_key is None:
            return self._default
        return self._owner.get(cell_key, self._default)
