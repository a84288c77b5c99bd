"""The states of a CM change in the ledger, and which of them are final, waiting or in flight.

A change walks REQUESTED -> (guard) REJECTED | PENDING_APPROVAL | APPROVED | DRY_RUN, then
APPROVED -> APPLYING (recorded *before* the adapter is called) -> APPLIED (the device said so)
-> OBSERVING (read-after-write matched) -> CONFIRMED, or ROLLING_BACK -> ROLLED_BACK. FAILED ends
a change whose device value is known but is not the wanted one (recorded with that value).

>>> sorted(s.value for s in FINAL)
['CONFIRMED', 'DENIED', 'DRY_RUN', 'EXPIRED', 'FAILED', 'REJECTED', 'ROLLED_BACK']
>>> State.APPLYING in UNSETTLED and State.OBSERVING not in UNSETTLED
True
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["FINAL", "IN_FLIGHT", "UNSETTLED", "WAITING", "State"]


class State(StrEnum):
    REQUESTED = "REQUESTED"
    REJECTED = "REJECTED"  # by the guard
    PENDING_APPROVAL = "PENDING_APPROVAL"
    APPROVED = "APPROVED"
    DENIED = "DENIED"  # by an operator
    EXPIRED = "EXPIRED"  # left unapproved past the policy's approval timeout
    DRY_RUN = "DRY_RUN"  # validated by the device, not applied
    APPLYING = "APPLYING"
    APPLIED = "APPLIED"
    OBSERVING = "OBSERVING"
    CONFIRMED = "CONFIRMED"
    ROLLING_BACK = "ROLLING_BACK"
    ROLLED_BACK = "ROLLED_BACK"
    FAILED = "FAILED"


FINAL = frozenset({State.REJECTED, State.DENIED, State.EXPIRED, State.DRY_RUN, State.CONFIRMED, State.ROLLED_BACK,
                   State.FAILED})
"""Nothing more happens to the change (a CONFIRMED one can still be rolled back by an operator)."""
WAITING = frozenset({State.PENDING_APPROVAL, State.OBSERVING})
"""Known states that wait: for a person, or for the observation periods."""
UNSETTLED = frozenset({State.REQUESTED, State.APPROVED, State.APPLYING, State.APPLIED, State.ROLLING_BACK})
"""States a crash can leave behind; reconciliation moves each on (reading the device where needed)."""
IN_FLIGHT = frozenset({State.APPROVED, State.APPLYING, State.APPLIED, State.OBSERVING, State.ROLLING_BACK})
"""A change in these states holds its cell (one in flight per cell) and counts in the blast radius."""
