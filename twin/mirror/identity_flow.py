"""Where cell identity sends records: the steps the worker's mirror stage and ``Twin.ingest`` share.

Records travel under envelope keys: a cluster id, or ``unassigned/<holding key>`` for held telemetry
(``twin.routing.HOLDING_PREFIX``). A node's resolution (``twin.mirror.identity.resolve_node``)
forwards records re-keyed to their canonical key, to that key's cluster or, when the topology does
not list it, to the key's holding (:func:`forward_destinations`); a cluster's identity output
(``ClusterMirror.take_identity``: notices, and derived PM that CM gives another node's cell) goes to
the holding of the node each record's DN names (:func:`notice_destinations`). The worker delivers
these through its re-keyed topic (``streams.mirror_stage``); :func:`deliver` is the same loop in
memory, with no transport, for ``twin.Twin.ingest``.

>>> from twin.config import TopologySettings
>>> from twin.routing import ClusterRouter
>>> route = ClusterRouter(TopologySettings.model_validate({"clusters": [{"id": "north",
...                                                         "cells": ["nr:00101-000000101"]}]}))
>>> sorted(forward_destinations([("nr:00101-000000101", ("pm", "nr:00101-000000101", {})),
...                              ("nr:00101-000000999", ("pm", "nr:00101-000000999", {}))], route))
['north', 'unassigned/nr:00101-000000999']
>>> from twin.mirror.identity import notice
>>> list(notice_destinations([notice("SubNetwork=X,ManagedElement=gnb-1,GNBDUFunction=1,NRCellDU=1",
...                                  "nr:00101-000000101")]))
['unassigned/dn:ManagedElement=gnb-1']
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from twin.mirror.cluster import ClusterMirror
from twin.mirror.holding import Holding
from twin.mirror.identity import IdentityIndex, node_key, resolve_node
from twin.records import NormalisedRecord
from twin.routing import HOLDING_PREFIX

__all__ = ["Delivery", "deliver", "forward_destinations", "notice_destinations"]

Destinations = dict[str, list[NormalisedRecord]]


def forward_destinations(forward: Iterable[tuple[str, NormalisedRecord]],
                         route: Callable[[str], str | None]) -> Destinations:
    """Records a node's resolution re-keyed to ``(canonical key, record)``, by envelope key: the
    key's cluster (``route``), else the key's own holding (``unassigned/<key>``)."""
    by_dest: Destinations = {}
    for cell_key, record in forward:
        dest = route(cell_key) or HOLDING_PREFIX + cell_key
        by_dest.setdefault(dest, []).append(record)
    return by_dest


def notice_destinations(records: Iterable[NormalisedRecord]) -> Destinations:
    """A cluster's identity output (notices, redirected derived PM), by the holding of the node
    its DN names (``unassigned/dn:ManagedElement=<id>``), where ``resolve_node`` reads it."""
    by_node: Destinations = {}
    for record in records:
        dn = cast(dict[str, Any], record[2])["dn"]
        by_node.setdefault(HOLDING_PREFIX + node_key(dn), []).append(record)
    return by_node


@dataclass
class Delivery:
    """What :func:`deliver` did: the clusters records were applied to, how many records went into
    the holding, the records refused for an identity conflict (``(record, reason)``) and the ones
    the holding had no room for (``(holding key, records, "full" or "evicted")``)."""

    clusters: set[str] = field(default_factory=set)
    held: int = 0
    refused: list[tuple[NormalisedRecord, str]] = field(default_factory=list)
    overflow: list[tuple[str, list[NormalisedRecord], str]] = field(default_factory=list)


def deliver(dests: Destinations, *, index: IdentityIndex, holding: Holding, route: Callable[[str], str | None],
            cluster: Callable[[str], ClusterMirror]) -> Delivery:
    """Deliver records by envelope key in memory, as the worker's mirror stage does through its
    re-keyed topic, until nothing is left in flight: a cluster applies its records (``cluster``
    gives the mirror; it is made to announce) and its identity output is delivered to the nodes'
    holdings; a node's holding key (``dn:...``) resolves its records first (``resolve_node``:
    learn, forward, refuse, release what CM now resolves); what is left is held under its key."""
    out = Delivery()
    queue: deque[tuple[str, list[NormalisedRecord]]] = deque(dests.items())
    while queue:
        dest, records = queue.popleft()
        if not dest.startswith(HOLDING_PREFIX):
            mirror = cluster(dest)
            mirror.announcing = True
            mirror.apply_many(records)
            out.clusters.add(dest)
            identity, refused = mirror.take_identity()
            out.refused += refused
            queue.extend(notice_destinations(identity).items())
            continue
        key = dest[len(HOLDING_PREFIX):]
        if key.startswith("dn:"):
            resolution = resolve_node(index, holding, key, records)
            out.refused += resolution.refused
            queue.extend(forward_destinations(resolution.forward, route).items())
            records = resolution.hold
            if not records:
                continue
        added = holding.add(key, records)
        out.held += len(records)
        if added.overflow:
            out.overflow.append((key, added.overflow, cast(str, added.overflow_reason)))
    return out
