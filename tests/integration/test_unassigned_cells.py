"""Cells the topology does not list, through the real broker and worker: their telemetry is held per
cell and counted, reported (``twin mirror show``, one UNKNOWN_CELL alert per cell), never simulated,
bounded (what does not fit is dead-lettered with the reason), and placed in its cluster once the
topology lists the cell (restart with the new topology), without counting anything twice.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import orjson
from typer.testing import CliRunner

from streams.broker import EmbeddedBroker
from streams.worker import IngestWorker
from tests.helpers import consume_all, network_records, publish, run_worker_until, settings_for
from twin import Twin, topics
from twin.cli import app
from twin.config import load_settings
from twin.synthetic import SyntheticNetwork

ROOT = Path(__file__).resolve().parents[2]


def test_unknown_cells_are_held_reported_bounded_and_placed_later(fresh_broker: EmbeddedBroker,
                                                                  tmp_path: Path) -> None:
    net = SyntheticNetwork(cells=6)
    known, unknown = net.keys[:3], net.keys[3:]  # three cells the topology lists, three it does not
    records = network_records(net, range(6), 30)
    by_cell = {k: sum(1 for r in records if r.key == k.encode() or (r.topic == topics.CM_SNAPSHOT and
                                                                       k in orjson.loads(r.value).get("cellKey", "")))
               for k in net.keys}
    bootstrap = fresh_broker.bootstrap_servers
    # at most 2 held cells per partition (one partition here) and 8 PM/MR records each
    settings = settings_for(tmp_path, [("east", known)], kafka={"partitions": 1},
                            topology={"clusters": [{"id": "east", "cells": known}], "unassigned_max_cells": 2,
                                      "unassigned_max_records": 8})

    async def first() -> IngestWorker:
        await publish(bootstrap, records, partitions=1)
        worker = IngestWorker(settings, bootstrap)
        await run_worker_until(worker, lambda w: w.stats.records_applied >= len(records))
        return worker

    worker = asyncio.run(first())
    store = worker.store
    clusters = store.load_all()
    assert sorted(clusters) == ["east"] and sorted(clusters["east"].cells) == known  # no made-up cluster
    held = store.load_unassigned().summary()
    # Which two unknown cells are held depends on which arrives first; the PM, MR and CM topics are
    # fetched concurrently, so the arrival order across topics is the broker's, not the publisher's.
    assert len(held) == 2 and set(held) <= set(unknown), sorted(held)
    unknown = sorted(held) + [k for k in unknown if k not in held]  # the third found the holding full
    for key in unknown[:2]:
        assert sum(held[key]["records"].values()) == by_cell[key]  # every record counted
        assert held[key]["held"] == 8 + 2 and held[key]["evicted"] == by_cell[key] - 2 - 8  # 2 CM objects
    assert worker.stats.unassigned_records == sum(by_cell[k] for k in unknown)

    async def read_back() -> tuple[list[dict[str, object]], list[dict[str, object]], list[dict[str, object]]]:
        dlq = await consume_all(bootstrap, topics.DLQ, by_cell[unknown[2]] + sum(by_cell[k] - 10 for k in unknown[:2]))
        alerts = await consume_all(bootstrap, topics.ALERTS, 2, timeout_s=5)
        predictions = await consume_all(bootstrap, topics.PREDICTIONS, 10**6, timeout_s=3)
        return ([orjson.loads(v) for v in dlq if v], [orjson.loads(v) for v in alerts if v],
                [orjson.loads(v) for v in predictions if v])

    dlq, alerts, predictions = asyncio.run(read_back())
    # nothing lost: what the holding could not keep is on the dead-letter topic, with the reason
    classes = {d["errorClass"] for d in dlq}
    assert classes == {"unassigned_full", "unassigned_evicted"}, classes
    assert len(dlq) == by_cell[unknown[2]] + sum(by_cell[k] - 10 for k in unknown[:2])
    full = next(d for d in dlq if d["errorClass"] == "unassigned_full")
    assert f"cell '{unknown[2]}' is in no cluster of the topology" in full["reason"]
    assert "topology.unassigned_max_cells" in full["reason"]
    # one alert per held cell, naming it
    assert sorted((a["cellKey"], a["type"]) for a in alerts) == [(k, "UNKNOWN_CELL") for k in unknown[:2]]
    # never simulated
    assert not {p["cellKey"] for p in predictions} & set(unknown)
    # reported by `twin mirror show`
    shown = CliRunner().invoke(app, ["mirror", "show", "--state-dir", str(store.directory), "--json"])
    assert shown.exit_code == 0, shown.output
    view = json.loads(shown.output)
    assert sorted(view["unassigned"]) == unknown[:2] and view["totals"]["unassignedCells"] == 2
    table = CliRunner().invoke(app, ["mirror", "show", "--state-dir", str(store.directory)])
    assert "in no cluster of the topology" in table.output and unknown[0] in table.output
    # the library sees the same
    assert sorted(Twin.from_state(store.directory, settings).unassigned) == unknown[:2]

    # The operator adds two of the cells to the topology and restarts the worker: their held telemetry
    # goes to the cluster, counted once, and leaves the holding.
    placed = settings_for(tmp_path, kafka={"partitions": 1},
                          topology={"clusters": [{"id": "east", "cells": known + unknown[:1]},
                                                 {"id": "west", "cells": unknown[1:2]}],
                                    "unassigned_max_cells": 2, "unassigned_max_records": 8})

    async def second() -> IngestWorker:
        worker = IngestWorker(placed, bootstrap)
        await run_worker_until(worker, lambda w: w.stats.unassigned_placed >= 2 and w.stats.checkpoints > 0)
        return worker

    worker = asyncio.run(second())
    clusters = worker.store.load_all()
    assert worker.store.load_unassigned().summary() == {}
    east, west = clusters["east"].cells[unknown[0]], clusters["west"].cells[unknown[1]]
    for cell in (east, west):
        # the 8 newest PM/MR records were held: the last periods' MR and PM, nothing twice
        assert cell.cm["NRCellDU.nRPCI"][0] is not None and "NRSectorCarrier.configuredMaxTxPower" in cell.cm
        assert cell.mr.count + sum(len(p) for p in cell.periods.values()) == 8
    assert clusters["east"].cells.keys() >= set(known)


def test_the_example_configuration_loads() -> None:
    settings = load_settings(ROOT / "deploy" / "config" / "example.toml")
    assert settings.topology.unassigned_max_cells == 1000 and settings.topology.clusters


def test_the_library_holds_unknown_cells_apart() -> None:
    net = SyntheticNetwork(cells=4)
    from twin.config import TwinSettings

    twin = Twin(config=TwinSettings.model_validate({"topology": {"clusters": [{"id": "a", "cells": net.keys[:2]}]}}))
    report = twin.ingest([r for r in network_records(net, range(2), 5)])
    assert report.rejected == [] and report.held > 0
    assert twin.clusters == ("a",) and sorted(twin.unassigned) == net.keys[2:]
    assert twin.unassigned[net.keys[2]]["records"]["pm"] == 2
