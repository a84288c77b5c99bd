"""Checkpoints of mirror state: one file per partition of the re-keyed ingest topic.

A checkpoint holds the clusters of the partition *and* the next offset to read, written
atomically together, so a restarted or replacement worker resumes exactly where the state ends:
no telemetry is lost and none is counted twice.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from twin.mirror.cluster import ClusterMirror


@dataclass(slots=True)
class PartitionState:
    partition: int
    next_offset: int = 0
    clusters: dict[str, ClusterMirror] = field(default_factory=dict)

    def cluster(self, cluster_id: str) -> ClusterMirror:
        cluster = self.clusters.get(cluster_id)
        if cluster is None:
            cluster = self.clusters[cluster_id] = ClusterMirror(cluster_id)
        return cluster


class CheckpointStore:
    """Partition checkpoints under ``directory`` (shared by the workers of one consumer group)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, partition: int) -> Path:
        return self.directory / f"partition-{partition:04d}.json"

    def save(self, state: PartitionState, extra: dict[str, Any] | None = None) -> None:
        doc = {
            "partition": state.partition,
            "nextOffset": state.next_offset,
            "clusters": {cid: c.to_dict() for cid, c in sorted(state.clusters.items())},
            **(extra or {}),
        }
        data = orjson.dumps(doc)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".ckpt-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path(state.partition))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load(self, partition: int) -> PartitionState:
        path = self.path(partition)
        if not path.exists():
            return PartitionState(partition)
        doc = orjson.loads(path.read_bytes())
        return PartitionState(
            partition=partition,
            next_offset=int(doc["nextOffset"]),
            clusters={cid: ClusterMirror.from_dict(c) for cid, c in doc["clusters"].items()},
        )

    def partitions(self) -> list[int]:
        return sorted(int(p.stem.split("-")[1]) for p in self.directory.glob("partition-*.json"))

    def load_all(self) -> dict[str, ClusterMirror]:
        """Every cluster checkpointed in this directory, merged across partitions."""
        clusters: dict[str, ClusterMirror] = {}
        for partition in self.partitions():
            clusters.update(self.load(partition).clusters)
        return clusters
