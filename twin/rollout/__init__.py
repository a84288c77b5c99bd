"""Apply, verify, confirm or roll back: ``ChangeRunner`` drives CM changes through the ledger."""

from twin.rollout.kpis import cluster_kpis
from twin.rollout.runner import ChangeRunner, ContextFn, same_value
from twin.rollout.verify import KpiVerdict, kpi_verdict

__all__ = ["ChangeRunner", "ContextFn", "KpiVerdict", "cluster_kpis", "kpi_verdict", "same_value"]
