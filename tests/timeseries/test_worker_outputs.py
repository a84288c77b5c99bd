"""The worker's outputs beside Kafka, through the real embedded broker and worker: every prediction
it publishes is also in the local time-series store (with the real values and the gap), every alert
too, and the alerts reach a real HTTP receiver in Alertmanager's webhook format."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import orjson

from replay.emulator import NetworkEmulator, load_scenario
from streams.broker import EmbeddedBroker
from streams.worker import IngestWorker
from tests.alerting.receiver import receiver
from tests.helpers import consume_all, publish, run_worker_until, settings_for
from twin import topics
from twin.timeseries import ALERT, GAP, KPI, LocalStore

FAR = 2**62
START = datetime(2024, 3, 1, 12, tzinfo=UTC)
MODEL_KEYS = ("scenario", "n_ues", "demand_bps", "indoor_fraction", "seed")
SILENT = "nr:00101-000009999"  # in the topology, never reports: a DATA_GAP alert


def test_worker_writes_time_series_and_delivers_alerts(fresh_broker: EmbeddedBroker, tmp_path: Path) -> None:
    emu = NetworkEmulator(load_scenario("suburban-quiet"), seed=1, start=START, granularity_s=900, mr_per_cell=1)
    cells = list(emu.cells)
    known, unknown = cells[:-1], cells[-1:]  # one cell outside the topology: an UNKNOWN_CELL alert
    records = emu.initial_records()
    for _ in range(4):
        records += emu.step()
    bootstrap = fresh_broker.bootstrap_servers

    with receiver([200]) as rx:
        settings = settings_for(tmp_path, [("east", [*known, SILENT])], kafka={"partitions": 1},
                                predict={**{k: v for k, v in emu.public_model().items() if k in MODEL_KEYS},
                                         "timeout_grace_s": 0.0},
                                webhook={"url": rx.url, "receiver": "noc", "retry_initial_s": 0.05})

        async def run() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
            await publish(bootstrap, records, partitions=1)
            worker = IngestWorker(settings, bootstrap)
            await run_worker_until(worker, lambda w: w.stats.records_applied >= len(records))
            assert worker.mirror.predictions is not None
            predictions = await consume_all(bootstrap, topics.PREDICTIONS, worker.mirror.predictions.stats.records)
            alerts = await consume_all(bootstrap, topics.ALERTS, worker.stats.alerts)
            return [orjson.loads(v) for v in predictions if v], [orjson.loads(v) for v in alerts if v]

        predictions, alerts = asyncio.run(run())
        delivered = [a for body in rx.accepted for a in body["alerts"]]

    assert predictions, "the worker predicted periods"
    store = LocalStore(settings.timeseries.local_file(settings.state_dir), readonly=True)
    stored = store.query(KPI, 0, FAR, {"kind": "predicted"})

    def epoch_ns(iso: str) -> int:
        return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC).timestamp()) * 10**9

    assert sorted((p.tags["cell"], p.tags["kpi"], p.time_ns, p.fields["value"]) for p in stored) == \
        sorted((str(r["cellKey"]), str(r["kpi"]), epoch_ns(str(r["periodEnd"])), r["predicted"]) for r in predictions)
    assert all(p.tags["cluster"] == "east" for p in stored)
    real = store.query(KPI, 0, FAR, {"kind": "real"})
    assert {p.tags["cell"] for p in real} == set(known)
    gaps = store.query(GAP, 0, FAR)
    assert gaps and all("raw" in g.fields for g in gaps)
    # every alert the worker published is a point and was delivered to the receiver
    assert sorted(str(a["cellKey"]) for a in alerts if a["type"] == "UNKNOWN_CELL") == sorted(unknown)
    assert any(a["cellKey"] == SILENT and a["type"] == "DATA_GAP" for a in alerts)
    points = store.query(ALERT, 0, FAR)
    assert sorted(str(p.fields["alertId"]) for p in points) == sorted(str(a["alertId"]) for a in alerts)
    assert sorted(a["labels"]["alert_id"] for a in delivered) == sorted(str(a["alertId"]) for a in alerts)
    assert all(a["labels"]["source"] == "ran-twin" for a in delivered)
    store.close()
    assert not settings.webhook.dead_letter_file(settings.state_dir).exists()
