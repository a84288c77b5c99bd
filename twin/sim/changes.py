"""CM changes for a what-if, in any of the forms callers hold them, as ``{cell: {attribute: value}}``.

Accepted: ``{cell_key: {attribute: value}}``; change requests as objects with ``cell_key``,
``attribute`` and ``to`` (``twin.schemas.CmChangeRequest``), as ``{"cellKey", "attribute", "to"}``
mappings or as ``(cell, attribute, value)`` tuples; one request alone or an iterable of them. The
values are checked later, by the simulator (``twin.sim.cm``); here only the form.

>>> normalise_changes([{"cellKey": "nr:a", "attribute": "digitalTilt", "to": 60}, ("nr:b", "azimuth", 90)])
{'nr:a': {'digitalTilt': 60}, 'nr:b': {'azimuth': 90}}
>>> normalise_changes({"cellKey": "nr:a", "attribute": "digitalTilt", "to": 60})
{'nr:a': {'digitalTilt': 60}}
>>> normalise_changes([("nr:a", "digitalTilt", 60), ("nr:a", "digitalTilt", 80)])
Traceback (most recent call last):
...
ValueError: cell 'nr:a': digitalTilt is changed twice in one what-if (to 60 and to 80)
>>> normalise_changes([{"cellKey": "nr:a", "to": 60}])
Traceback (most recent call last):
...
ValueError: change request {'cellKey': 'nr:a', 'to': 60} lacks 'attribute'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["CHANGE_REQUEST_KEYS", "normalise_changes"]

CHANGE_REQUEST_KEYS = ("cellKey", "attribute", "to")


def _is_request_mapping(value: Mapping[Any, Any]) -> bool:
    return "cellKey" in value or ("attribute" in value and "to" in value)


def _is_request_object(value: object) -> bool:
    return all(hasattr(value, name) for name in ("cell_key", "attribute", "to"))


def normalise_changes(changes: Any) -> dict[str, dict[str, Any]]:
    """``{cell: {attribute: value}}`` from any accepted form; ``ValueError`` naming what is wrong."""
    if isinstance(changes, Mapping) and not _is_request_mapping(changes):
        out: dict[str, dict[str, Any]] = {}
        for cell, attrs in changes.items():
            if not isinstance(attrs, Mapping):
                raise ValueError(f"changes for cell {cell!r} must map attribute -> value, got {attrs!r}")
            out[str(cell)] = dict(attrs)
        return out
    if isinstance(changes, Mapping) or _is_request_object(changes):
        changes = [changes]
    if isinstance(changes, str | bytes) or not isinstance(changes, Iterable):
        raise ValueError(f"changes must be change requests or {{cell: {{attribute: value}}}}, got {changes!r}")
    out = {}
    for ch in changes:
        if _is_request_object(ch):
            cell, attr, value = ch.cell_key, ch.attribute, ch.to
        elif isinstance(ch, Mapping):
            missing = [k for k in CHANGE_REQUEST_KEYS if k not in ch]
            if missing:
                raise ValueError(f"change request {dict(ch)!r} lacks {missing[0]!r}")
            cell, attr, value = ch["cellKey"], ch["attribute"], ch["to"]
        elif isinstance(ch, tuple | list) and len(ch) == 3:
            cell, attr, value = ch
        else:
            raise ValueError(f"change request {ch!r} is not a CmChangeRequest, a mapping with "
                             f"{', '.join(CHANGE_REQUEST_KEYS)} or a (cell, attribute, value) tuple")
        attrs = out.setdefault(str(cell), {})
        if str(attr) in attrs:
            raise ValueError(f"cell {str(cell)!r}: {attr} is changed twice in one what-if "
                             f"(to {attrs[str(attr)]!r} and to {value!r})")
        attrs[str(attr)] = value
    return out
