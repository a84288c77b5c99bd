"""The guard: the safety policy every CM change must pass (``twin.guard.Guard``)."""

from twin.guard.guard import OBJECTIVE, Decision, Guard, GuardContext, Violation, twin_justified
from twin.guard.policy import AttributeRule, GuardPolicy, ProtectedKpi, parse_window

__all__ = ["OBJECTIVE", "AttributeRule", "Decision", "Guard", "GuardContext", "GuardPolicy", "ProtectedKpi",
           "Violation", "parse_window", "twin_justified"]
