"""Canonical cell keys (NCGI / ECGI strings) shared by PM, CM and MR.

A cell has two DNs in NR (one under the DU, one under the CU-CP) and several vendor names; the key
is the only identity every record agrees on, so it is validated at the edge.

>>> nr_cell_key("00101", gnb_id=0x2A, gnb_id_length=24, cell_local_id=0x1C)
'nr:00101-00002a01c'
>>> is_cell_key("nr:00101-00000a01c"), is_cell_key("nr:1-abc")
(True, False)
>>> is_cell_key("nr:00101-0000a01c"), is_cell_key("lte:00101-fffffffff")  # 8 hex digits; an ECI over 28 bits
(False, False)
>>> parse_cell_key("lte:001001-01a2b3c")
('lte', '001001', '01a2b3c')
"""

from __future__ import annotations

import re

__all__ = ["CELL_KEY_PATTERN", "is_cell_key", "lte_cell_key", "nr_cell_key", "parse_cell_key"]

CELL_KEY_PATTERN = r"^(nr:[0-9]{5,6}-[0-9a-f]{9}|lte:[0-9]{5,6}-[0-9a-f]{7})$"
"""An NCGI is PLMN + the 36-bit NCI in 9 hex digits, an ECGI PLMN + the 28-bit ECI in 7: one cell,
one spelling (``nr:00101-0000a01c`` would be another cell than ``nr:00101-00000a01c``)."""
_CELL_KEY_RE = re.compile(CELL_KEY_PATTERN)


def is_cell_key(value: str) -> bool:
    return bool(_CELL_KEY_RE.fullmatch(value))


def parse_cell_key(value: str) -> tuple[str, str, str]:
    """Split a key into (rat, plmn, cell identity hex); raise ``ValueError`` naming the value."""
    if not is_cell_key(value):
        raise ValueError(f"cellKey {value!r} is not a canonical key like 'nr:00101-00000a01c'")
    rat, rest = value.split(":", 1)
    plmn, ident = rest.split("-", 1)
    return rat, plmn, ident


def nr_cell_key(plmn: str, gnb_id: int, gnb_id_length: int, cell_local_id: int) -> str:
    """NCGI = PLMN + 36-bit NCI; the NCI is the gNB id followed by the local cell id."""
    if not 22 <= gnb_id_length <= 32:
        raise ValueError(f"gnbIdLength {gnb_id_length} outside 22..32")
    cell_bits = 36 - gnb_id_length
    if gnb_id >= 1 << gnb_id_length or gnb_id < 0:
        raise ValueError(f"gnbId {gnb_id} does not fit in {gnb_id_length} bits")
    if cell_local_id >= 1 << cell_bits or cell_local_id < 0:
        raise ValueError(f"cellLocalId {cell_local_id} does not fit in {cell_bits} bits")
    nci = (gnb_id << cell_bits) | cell_local_id
    key = f"nr:{plmn}-{nci:09x}"
    parse_cell_key(key)
    return key


def lte_cell_key(plmn: str, eci: int) -> str:
    """ECGI = PLMN + 28-bit ECI (eNB id * 256 + cell id)."""
    if not 0 <= eci < 1 << 28:
        raise ValueError(f"ECI {eci} outside the 28-bit range")
    key = f"lte:{plmn}-{eci:07x}"
    parse_cell_key(key)
    return key
