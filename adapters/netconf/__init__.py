"""CM adapter for NETCONF (O-RAN O1) with the 3GPP SA5 YANG models: ``NetconfAdapter``.

Found by ``twin.ports.open_adapter("netconf", host=..., port=..., username=..., password=...)``
(entry point ``netconf`` of the ``twin.adapters`` group). Every payload is checked with ``yanglint``
against the official modules before it is sent; writes go through the candidate datastore with a
confirmed commit where the server offers it. See ``docs/adapter-netconf.md``. This layer imports
``twin`` only.
"""

from adapters.netconf.adapter import NetconfAdapter
from adapters.netconf.mapping import DEFAULT_ATTRIBUTE_MAP, AttributeMapping
from adapters.netconf.yang import YangValidator, default_yang_dir

__all__ = ["DEFAULT_ATTRIBUTE_MAP", "AttributeMapping", "NetconfAdapter", "YangValidator", "default_yang_dir"]
