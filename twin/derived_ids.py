"""The one rule that derives cell ids from node and cell names when no CM gives the real ones.

PM files name objects by DN and seldom carry a cell global id. The file reader
(``replay.readers.dn``) then derives an id from the names, and the mirror (``twin.mirror.identity``)
recognises such a derived key so that it resolves the record through CM instead of trusting the
guess. Both must apply the same rule, so it lives here once:

- NR: gNB id = CRC-32 of the ``ManagedElement`` id truncated to ``gnb_id_length`` bits; cellLocalId
  = the cell's id when numeric and below the all-ones value, else its CRC-32 folded into the
  remaining ``36 - gnb_id_length`` bits (never all ones: that value is the node's reserved id);
- LTE: eNB id = CRC-32 of the ``ManagedElement`` id truncated to 20 bits; cell id = the cell's id
  when numeric and below 256, else its CRC-32 truncated to 8 bits.

>>> hex(derived_nci("gnb-001", "1", 24))
'0xda43a8001'
>>> derived_nci("gnb-001", None, 24) & 0xFFF  # node-level objects: the reserved all-ones id
4095
>>> hex(derived_eci("enb-7", "3"))
'0xd6fbe03'
>>> derived_nci("gnb-001", "1", 40)
Traceback (most recent call last):
...
ValueError: gnb_id_length 40 is outside 22..32 (TS 38.413 gNB ID length)
"""

from __future__ import annotations

import zlib

__all__ = ["derived_eci", "derived_local_id", "derived_nci", "name_hash"]

_NCI_BITS = 36


def name_hash(text: str, bits: int) -> int:
    """CRC-32 of ``text`` (UTF-8) truncated to its low ``bits`` bits: stable across runs and hosts.

    >>> name_hash("gnb-001", 8)
    168
    """
    return zlib.crc32(text.encode()) & ((1 << bits) - 1)


def derived_local_id(value: str, cell_bits: int) -> int:
    """The cellLocalId derived from a cell's RDN value, in ``cell_bits`` bits, never all ones.

    >>> derived_local_id("12", 12), derived_local_id("4095", 12) != 4095
    (12, True)
    """
    reserved = (1 << cell_bits) - 1
    if value.isdigit() and int(value) < reserved:
        return int(value)
    return name_hash(value, cell_bits) % reserved


def derived_nci(managed_element: str, cell: str | None, gnb_id_length: int) -> int:
    """The 36-bit NCI derived from the node's and the cell's names; ``cell=None`` for node-level objects."""
    if not 22 <= gnb_id_length <= 32:
        raise ValueError(f"gnb_id_length {gnb_id_length} is outside 22..32 (TS 38.413 gNB ID length)")
    cell_bits = _NCI_BITS - gnb_id_length
    local = (1 << cell_bits) - 1 if cell is None else derived_local_id(cell, cell_bits)
    return (name_hash(managed_element, gnb_id_length) << cell_bits) | local


def derived_eci(managed_element: str, cell: str) -> int:
    """The 28-bit ECI derived from the node's and the cell's names (20-bit eNB id, 8-bit cell id)."""
    cid = int(cell) if cell.isdigit() and int(cell) < 256 else name_hash(cell, 8)
    return (name_hash(managed_element, 20) << 8) | cid
