"""The domain core of the RAN digital-twin runtime.

``twin`` knows no transport: Kafka, NETCONF and files live in ``streams``, ``adapters`` and
``replay``, which depend on this package and never the other way round. ``twin.Twin`` is the one
entry point for the mirrored network (open a worker's state, predict, what-if, feed records in
memory); see ``docs/library.md``.
"""

from twin.digital_twin import IngestReport, Twin, WhatIf
from twin.errors import NoDataError, TwinError, UnknownCellError, UnknownClusterError
from twin.prediction import ClusterPrediction

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
