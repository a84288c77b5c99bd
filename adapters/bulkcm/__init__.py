"""CM adapter for an OSS that imports bulk CM files (TS 32.616 ``bulkCmConfigDataFile``) and exports its configuration.

``BulkCmAdapter(import_dir, export_dir, ...)`` writes one file per change into the OSS's import
folder and confirms the change from the OSS's newest export file; ``adapters.bulkcm.fileformat``
holds the file format (writer, structural check, hardened reader) and the vendor attribute map.
Found by ``twin.ports.open_adapter("bulkcm", import_dir=..., export_dir=...)``. See
``docs/adapter-bulkcm.md``.
"""

from adapters.bulkcm.adapter import BulkCmAdapter, ImportResult, import_file_name, result_file_name
from adapters.bulkcm.fileformat import DEFAULT_ATTRIBUTE_MAP, BulkCmFormatError, FileAttribute, IntCodec, QOffsetCodec

__all__ = [
    "DEFAULT_ATTRIBUTE_MAP", "BulkCmAdapter", "BulkCmFormatError", "FileAttribute", "ImportResult", "IntCodec",
    "QOffsetCodec", "import_file_name", "result_file_name",
]
