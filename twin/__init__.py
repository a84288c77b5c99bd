"""The domain core of the RAN digital-twin runtime.

``twin`` knows no transport: Kafka, NETCONF and files live in ``streams``, ``adapters`` and
``replay``, which depend on this package and never the other way round.
"""

__version__ = "0.1.0"
