"""Apply, verify, confirm or roll back: ``ChangeRunner`` drives CM changes through the ledger."""

from twin.rollout.kpis import cluster_kpis
from twin.rollout.runner import ChangeRunner, ContextFn, ScopeFn, same_value
from twin.rollout.scope import whatif_scope
from twin.rollout.verify import KpiVerdict, control_verdict, kpi_verdict

__all__ = ["ChangeRunner", "ContextFn", "KpiVerdict", "ScopeFn", "cluster_kpis", "control_verdict", "kpi_verdict",
           "same_value", "whatif_scope"]
