"""``Twin.ingest`` resolves cell identity as the worker does, in memory (``twin.mirror.identity_flow``).

PM keys here are the real file reader's derivation (``replay.readers.dn.DnResolver``) for two nodes
whose derived keys collide; CM gives their cells distinct real keys. Held PM must land in the right
cell once CM comes (in the same ``ingest`` call or a later one), conflicts are refused and reported,
and records with real keys go straight where they belong. The twin's identity index is also read
back from a worker's checkpoint store (``Twin.from_state``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from replay.readers.dn import DnResolver
from twin import Twin, topics
from twin.cells import nr_cell_key
from twin.config import IngestSettings, TwinSettings
from twin.derived_ids import derived_nci
from twin.ingest import IngestDecoder, Rejection
from twin.mirror.holding import Holding
from twin.mirror.identity import CONFLICT, IdentityIndex, node_key, notice, resolve_node
from twin.mirror.store import CheckpointStore, PartitionState

T0 = datetime(2026, 3, 1, 10, 15, tzinfo=UTC)
PLMN = "00101"
# two ManagedElement ids whose gNB ids, derived by the reader from a 24-bit CRC-32, are the same
# (found with a birthday search over "site-<i>"; asserted in ``test_the_pair_collides``)
ME_A, ME_B, ME_C = "site-564", "site-243000", "site-9"
KEY_A, KEY_B = nr_cell_key(PLMN, 101, 24, 1), nr_cell_key(PLMN, 102, 24, 1)
KEY_OUT = nr_cell_key(PLMN, 777, 24, 1)  # a real key the topology does not list


def pm_dn(me: str) -> str:
    return f"SubNetwork=PmFile,ManagedElement={me},GNBDUFunction=1,NRCellDU=1"


def cm_dn(me: str) -> str:  # the CM source prefixes DNs differently from the PM file
    return f"DC=op,SubNetwork=Cm,ManagedElement={me},GNBDUFunction=1,NRCellDU=1"


def derived(me: str) -> str:
    return DnResolver(plmn=PLMN).cell(pm_dn(me))[1]


def pm(key: str, dn: str, value: float, period: int = 0) -> dict[str, Any]:
    end = T0 + timedelta(seconds=900 * period)
    return {"cellKey": key, "measObjDn": dn, "measObjClass": "NRCellDU", "periodEnd": end.isoformat(),
            "granularityPeriodS": 900, "values": {"RRU.PrbTotDl": value}}


def cm(dn: str, key: str | None, attributes: dict[str, Any] | None = None, cls: str = "NRCellDU") -> dict[str, Any]:
    doc: dict[str, Any] = {"dn": dn, "class": cls, "attributes": attributes or {"nRPCI": 7},
                           "observedAt": T0.isoformat()}
    if key is not None:
        doc["cellKey"] = key
    return doc


def new_twin() -> Twin:
    return Twin(config=TwinSettings.model_validate(
        {"topology": {"clusters": [{"id": "north", "cells": [KEY_A, KEY_B]}]}}))


def prb(twin: Twin, key: str) -> dict[int, float]:
    return dict(twin.mirror("north").cells[key].pm[900]["RRU.PrbTotDl"])


def test_the_pair_collides() -> None:
    assert derived_nci(ME_A, "1", 24) == derived_nci(ME_B, "1", 24)
    assert derived(ME_A) == derived(ME_B) != derived(ME_C)


def test_held_derived_pm_lands_in_distinct_cells_once_cm_names_them() -> None:
    twin = new_twin()
    start = round(T0.timestamp())
    report = twin.ingest([pm(derived(ME_A), pm_dn(ME_A), 11.0), pm(derived(ME_B), pm_dn(ME_B), 22.0)])
    assert report.rejected == [] and report.applied == 2 and report.held == 2 and report.clusters == set()
    assert twin.mirror("north").cells == {}  # nothing lands under a guess
    assert set(twin.unassigned) == {node_key(pm_dn(ME_A)), node_key(pm_dn(ME_B))}

    report = twin.ingest([cm(cm_dn(ME_A), KEY_A), cm(cm_dn(ME_B), KEY_B)])
    assert report.rejected == [] and report.clusters == {"north"}
    assert prb(twin, KEY_A) == {start: 11.0} and prb(twin, KEY_B) == {start: 22.0}
    assert derived(ME_A) not in twin.mirror("north").cells
    assert all(h["held"] == 0 for h in twin.unassigned.values())  # released, not copied

    # later derived PM of a resolved node goes straight to its cell, in the same call
    report = twin.ingest([pm(derived(ME_B), pm_dn(ME_B), 33.0, period=1)])
    assert report.held == 0 and report.clusters == {"north"} and report.rejected == []
    assert prb(twin, KEY_B) == {start: 22.0, start + 900: 33.0} and prb(twin, KEY_A) == {start: 11.0}


def test_pm_and_cm_in_one_call_and_key_less_cm_with_id_attributes() -> None:
    twin = new_twin()
    start = round(T0.timestamp())
    # node A's CM carries a key; node B's gives it through gNB id and cell local id (no cellKey)
    fn_b = f"DC=op,SubNetwork=Cm,ManagedElement={ME_B},GNBDUFunction=1"
    report = twin.ingest([
        pm(derived(ME_A), pm_dn(ME_A), 1.0), pm(derived(ME_B), pm_dn(ME_B), 2.0),
        cm(fn_b, None, {"gNBId": 102, "gNBIdLength": 24, "pLMNId": {"mcc": "001", "mnc": "01"}}, "GNBDUFunction"),
        cm(cm_dn(ME_B), None, {"cellLocalId": 1, "nRPCI": 9}),
        cm(cm_dn(ME_A), KEY_A),
    ])
    assert report.rejected == [] and report.clusters == {"north"}
    assert prb(twin, KEY_A) == {start: 1.0} and prb(twin, KEY_B) == {start: 2.0}
    assert twin.mirror("north").cells[KEY_B].cm["NRCellDU.nRPCI"][0] == 9  # B's key-less CM reached its cell


def test_conflicting_cm_is_refused_with_its_reason() -> None:
    twin = new_twin()
    start = round(T0.timestamp())
    twin.ingest([cm(cm_dn(ME_A), KEY_A)])
    # node C's PM waits; then CM gives C's cell node A's key: refused, and so is C's held PM
    held = twin.ingest([pm(derived(ME_C), pm_dn(ME_C), 5.0)])
    assert held.held == 1 and held.rejected == []
    report = twin.ingest([pm(derived(ME_A), pm_dn(ME_A), 4.0), cm(cm_dn(ME_C), KEY_A, {"nRPCI": 99})])
    assert [(r.index, r.error_class) for r in report.rejected] == [(1, CONFLICT), (1, CONFLICT)]
    assert all(r.reason.startswith("cell identity conflict: ") and cm_dn(ME_C) in r.reason and KEY_A in r.reason
               for r in report.rejected)
    cell = twin.mirror("north").cells[KEY_A]
    assert cell.cm["NRCellDU.nRPCI"][0] == 7 and prb(twin, KEY_A) == {start: 4.0}  # nothing of C merged
    assert node_key(pm_dn(ME_C)) not in twin.unassigned  # C's PM left the holding, refused (nothing waits)
    # later PM of C is refused too, never merged
    later = twin.ingest([pm(derived(ME_C), pm_dn(ME_C), 6.0, period=1)])
    assert [r.error_class for r in later.rejected] == [CONFLICT] and prb(twin, KEY_A) == {start: 4.0}


def test_records_with_real_keys_are_unaffected() -> None:
    twin = new_twin()
    start = round(T0.timestamp())
    report = twin.ingest([pm(KEY_A, pm_dn(ME_A), 3.0), pm(KEY_OUT, pm_dn(ME_C), 8.0)])
    assert report.rejected == [] and report.clusters == {"north"} and report.held == 1
    assert prb(twin, KEY_A) == {start: 3.0}
    assert set(twin.unassigned) == {KEY_OUT}  # held under its own key, not by node


def test_derived_pm_whose_real_key_is_outside_the_topology_is_held_under_that_key() -> None:
    twin = new_twin()
    twin.ingest([pm(derived(ME_C), pm_dn(ME_C), 5.0)])
    # key-less CM whose nCI gives the cell a key the topology does not list
    ids = {"nCI": (777 << 12) | 1, "pLMNInfoList": [{"mcc": "001", "mnc": "01"}]}
    report = twin.ingest([cm(cm_dn(ME_C), None, ids)])
    assert report.rejected == [] and report.clusters == set()
    assert twin.unassigned[KEY_OUT]["records"] == {"cm": 1, "pm": 1}
    assert twin.unassigned[KEY_OUT]["firstEventTime"] == T0.timestamp()
    assert twin.unassigned[node_key(pm_dn(ME_C))]["held"] == 1  # the node keeps its key-less CM, not the PM


def test_from_state_reads_the_identity_index_and_holding_a_worker_checkpointed(tmp_path: Path) -> None:
    """A worker's partition (built with the worker's own steps, saved by the real checkpoint store)
    holds node A's derived PM and has learned node B's key from a notice: the twin opened on it
    lands B's next derived PM straight away, and A's held PM once CM names A's cell."""
    index, holding = IdentityIndex(), Holding()
    record = IngestDecoder(IngestSettings()).decode(topics.PM_CELL, None,
                                                    orjson.dumps(pm(derived(ME_A), pm_dn(ME_A), 12.0)))
    assert not isinstance(record, Rejection)
    decoded = [record]
    held = resolve_node(index, holding, node_key(pm_dn(ME_A)), decoded)
    assert held.hold == decoded and held.forward == []
    holding.add(node_key(pm_dn(ME_A)), held.hold)
    learned = resolve_node(index, holding, node_key(pm_dn(ME_B)), [notice(cm_dn(ME_B), KEY_B)])
    assert learned.hold == [] and learned.forward == []
    store = CheckpointStore(tmp_path)
    store.save(PartitionState(0, identity=index, unassigned=holding))
    store.close()

    twin = Twin.from_state(tmp_path, TwinSettings.model_validate(
        {"topology": {"clusters": [{"id": "north", "cells": [KEY_A, KEY_B]}]}}))
    start = round(T0.timestamp())
    report = twin.ingest([pm(derived(ME_B), pm_dn(ME_B), 21.0)])
    assert report.held == 0 and report.rejected == [] and prb(twin, KEY_B) == {start: 21.0}
    report = twin.ingest([cm(cm_dn(ME_A), KEY_A)])
    assert report.rejected == [] and prb(twin, KEY_A) == {start: 12.0}
