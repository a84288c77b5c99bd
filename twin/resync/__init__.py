"""Resynchronisation of the twin with the network: what starts one (``trigger``: signals from the
gap learners, later DT-BSM, gated into episodes with hysteresis and a minimum interval) and the
alerts an episode raises and clears (``alerts``)."""

from twin.resync.alerts import DIVERGENCE_CAUSE, RESYNC_CAUSE, divergence_alert, resync_alert, telemetry_alert
from twin.resync.trigger import Episode, Signal, TriggerEvent, TriggerGate

__all__ = ["DIVERGENCE_CAUSE", "RESYNC_CAUSE", "Episode", "Signal", "TriggerEvent", "TriggerGate", "divergence_alert",
           "resync_alert", "telemetry_alert"]
