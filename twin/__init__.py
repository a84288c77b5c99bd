"""The domain core of the RAN digital-twin runtime.

``twin`` knows no transport: Kafka, NETCONF and files live in ``streams``, ``adapters`` and
``replay``, which depend on this package and never the other way round. ``twin.Twin`` is the one
entry point for the mirrored network (open a worker's state, predict, what-if, feed records in
memory); see ``docs/library.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from twin.errors import NoDataError, TwinError, UnknownCellError, UnknownClusterError

if TYPE_CHECKING:
    from twin.digital_twin import IngestReport, Twin, WhatIf
    from twin.prediction import ClusterPrediction

# Imported on first use (PEP 562): ``import twin.fidelity`` or ``twin.sim`` alone does not load the
# learners, river and scipy.stats that ``Twin`` needs (1.4 s of a cold start).
_LAZY = {"IngestReport": "twin.digital_twin", "Twin": "twin.digital_twin", "WhatIf": "twin.digital_twin",
         "ClusterPrediction": "twin.prediction"}

__all__ = [
    "ClusterPrediction",
    "IngestReport",
    "NoDataError",
    "Twin",
    "TwinError",
    "UnknownCellError",
    "UnknownClusterError",
    "WhatIf",
    "__version__",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'twin' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
