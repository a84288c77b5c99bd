"""Checkpoints of mirror state: one file per partition of the re-keyed ingest topic.

A checkpoint holds the clusters of the partition *and* the next offset to read, written
atomically together, so a restarted or replacement worker resumes exactly where the state ends:
no telemetry is lost and none is counted twice.

Saving is two steps so that a worker can keep its event loop free while the file is written:
:func:`snapshot` copies state and offset together (cheap, synchronously), :func:`encode` turns
the copy into bytes and :meth:`CheckpointStore.write` makes them durable (temp file, fsync, atomic
rename); the last two may run in another thread.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from twin.mirror.cluster import ClusterMirror
from twin.mirror.holding import Holding

__all__ = ["CheckpointStore", "PartitionState", "encode", "snapshot"]


@dataclass(slots=True)
class PartitionState:
    """The clusters of one partition of the re-keyed topic, the telemetry it holds for cells the
    topology does not list (``twin.mirror.holding``), and the next offset to read."""

    partition: int
    next_offset: int = 0
    clusters: dict[str, ClusterMirror] = field(default_factory=dict)
    unassigned: Holding = field(default_factory=Holding)

    def cluster(self, cluster_id: str) -> ClusterMirror:
        cluster = self.clusters.get(cluster_id)
        if cluster is None:
            cluster = self.clusters[cluster_id] = ClusterMirror(cluster_id)
        return cluster


# integer keys (gp, period ends) become JSON strings as ``to_dict`` writes them; sets become lists
_OPTIONS = orjson.OPT_NON_STR_KEYS


def _default(value: object) -> object:
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"cannot checkpoint a {type(value).__name__}")


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=_OPTIONS)


def encode(state: PartitionState, extra: dict[str, Any] | None = None) -> bytes:
    """The checkpoint of ``state`` (state and next offset together) as bytes.

    Encoded a cell at a time, so that in a thread it never holds the interpreter lock for long;
    the state must not change meanwhile: in a thread, encode a ``snapshot``.
    """
    head = _dumps({"partition": state.partition, "nextOffset": state.next_offset, **(extra or {})})
    clusters = []
    for cid, cluster in state.clusters.items():
        rest = _dumps(cluster.checkpoint_view(cells=False))
        cells = b",".join(_dumps(k) + b":" + _dumps(c.checkpoint_view()) for k, c in cluster.cells.items())
        clusters.append(_dumps(cid) + b":" + rest[:-1] + b',"cells":{' + cells + b"}}")
    held = _dumps(state.unassigned.to_dict())
    return head[:-1] + b',"unassigned":' + held + b',"clusters":{' + b",".join(clusters) + b"}}"


def snapshot(state: PartitionState) -> PartitionState:
    """A copy of ``state`` that later updates do not change: what a background checkpoint encodes."""
    return PartitionState(state.partition, state.next_offset,
                          {cid: c.snapshot() for cid, c in state.clusters.items()}, state.unassigned.snapshot())


class CheckpointStore:
    """Partition checkpoints under ``directory`` (shared by the workers of one consumer group).

    ``read_only`` opens the checkpoints of a worker that may be running: nothing is created or
    written, and no lock is taken (a checkpoint is replaced atomically, so a reader sees the old
    file or the new one, never a partial write).

    >>> CheckpointStore(Path("/nonexistent/twin-state"), read_only=True).load_all()
    {}
    """

    def __init__(self, directory: Path, read_only: bool = False) -> None:
        self.directory = directory
        self.read_only = read_only
        if not read_only:
            directory.mkdir(parents=True, exist_ok=True)

    def path(self, partition: int) -> Path:
        return self.directory / f"partition-{partition:04d}.json"

    def save(self, state: PartitionState, extra: dict[str, Any] | None = None) -> None:
        self.write(state.partition, encode(state, extra))

    def write(self, partition: int, data: bytes) -> None:
        """Make ``data`` (from :func:`encode`) the partition's checkpoint: durable, atomic."""
        if self.read_only:
            raise PermissionError(f"checkpoint store {self.directory} is open read-only")
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".ckpt-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path(partition))
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
            unassigned=Holding.from_dict(doc.get("unassigned", {})),
        )

    def partitions(self) -> list[int]:
        return sorted(int(p.stem.split("-")[1]) for p in self.directory.glob("partition-*.json"))

    def load_unassigned(self) -> Holding:
        """The telemetry held for cells outside the topology, merged across partitions."""
        merged = Holding(max_keys=1 << 62)
        for partition in self.partitions():
            merged.held.update(self.load(partition).unassigned.held)
        return merged

    def load_all(self) -> dict[str, ClusterMirror]:
        """Every cluster checkpointed in this directory, merged across partitions."""
        clusters: dict[str, ClusterMirror] = {}
        for partition in self.partitions():
            clusters.update(self.load(partition).clusters)
        return clusters
