"""The consumer group timing settings: defaults, the environment, and a clear error."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from twin.config import KafkaSettings, TwinSettings


def test_group_timing_defaults_are_the_clients_and_the_environment_sets_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWIN_KAFKA__SESSION_TIMEOUT_MS", raising=False)
    monkeypatch.delenv("TWIN_KAFKA__HEARTBEAT_INTERVAL_MS", raising=False)
    kafka = TwinSettings().kafka
    assert (kafka.session_timeout_ms, kafka.heartbeat_interval_ms) == (10_000, 3_000)  # aiokafka's defaults
    monkeypatch.setenv("TWIN_KAFKA__SESSION_TIMEOUT_MS", "45000")
    assert TwinSettings.model_validate({"kafka": {"group_id": "g"}}).kafka.session_timeout_ms == 45_000


def test_a_heartbeat_not_below_the_session_is_refused_with_both_values() -> None:
    with pytest.raises(ValidationError, match=re.escape(
            "kafka.heartbeat_interval_ms (6000) must be below kafka.session_timeout_ms (6000)")):
        KafkaSettings(session_timeout_ms=6000, heartbeat_interval_ms=6000)
    with pytest.raises(ValidationError, match="session_timeout_ms"):
        KafkaSettings(session_timeout_ms=10)
