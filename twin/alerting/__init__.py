"""Alert delivery formats beside the Kafka alert topic: Alertmanager's webhook JSON (``alertmanager``).
The HTTP delivery (retries, dead letters) is transport and lives in ``streams.webhook``."""

from twin.alerting.alertmanager import ZERO_TIME, alert_labels, fingerprint, group_key, groups, notification

__all__ = ["ZERO_TIME", "alert_labels", "fingerprint", "group_key", "groups", "notification"]
