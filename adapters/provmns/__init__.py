"""CM adapter over 3GPP ProvMnS REST (TS 28.532): ``ProvMnsAdapter(base_url, ...)``.

Found by name: ``twin.ports.open_adapter("provmns", base_url=...)``. ``mapping`` holds the DN to
URI rule and the vendor attribute map (``DEFAULT_ATTRIBUTE_MAP``); ``docs/adapter-provmns.md``
describes both, the error mapping and how requests are checked against the official OpenAPI.
This layer imports ``twin`` only.
"""

from adapters.provmns.adapter import JSON_PATCH, MERGE_PATCH, ProvMnsAdapter
from adapters.provmns.mapping import DEFAULT_ATTRIBUTE_MAP, NOT_MAPPED, AttributeMapping, parse_dn, uri_path

__all__ = [
    "DEFAULT_ATTRIBUTE_MAP", "JSON_PATCH", "MERGE_PATCH", "NOT_MAPPED", "AttributeMapping", "ProvMnsAdapter",
    "parse_dn", "uri_path",
]
