"""The CM ledger: durable, append-only, idempotent by change id (SQLite default, PostgreSQL)."""

from twin.ledger.states import FINAL, IN_FLIGHT, UNSETTLED, WAITING, State
from twin.ledger.store import ChangeView, Event, Ledger, LedgerError, OutboxRecord, open_ledger, sqlite_file

__all__ = ["FINAL", "IN_FLIGHT", "UNSETTLED", "WAITING", "ChangeView", "Event", "Ledger", "LedgerError",
           "OutboxRecord", "State", "open_ledger", "sqlite_file"]
