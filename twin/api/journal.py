"""The alert journal: every alert a process publishes, also appended to ``alerts.jsonl`` in the
worker's checkpoint folder, so the API serving that folder lists alerts without a broker.

Why a file: ``ran.alerts.v1`` is the alerts' home, but the API serves a state directory and must
answer while the broker is down (that is when an operator looks). Appends are whole lines under
``O_APPEND`` (atomic for lines this short on a local file system), alerts are rare (a few an hour),
and a reader skips a line it cannot parse rather than fail, counting it.

>>> import tempfile
>>> from datetime import UTC, datetime
>>> from twin.schemas import Alert
>>> d = Path(tempfile.mkdtemp())
>>> a = Alert(alert_id="0b6e5f2a-7a1c-5c6e-9d2e-0f9e1b2c3d4e", raised_at=datetime(2026, 1, 1, tzinfo=UTC),
...           cell_key="nr:00101-000000202", severity="MAJOR", type="TWIN_DIVERGENCE")
>>> append(d, [a, a])
>>> alerts, bad = read(d)
>>> len(alerts), bad, alerts[0].type.value
(2, 0, 'TWIN_DIVERGENCE')
>>> (d / FILE).open("a").write("{not json\\n") > 0
True
>>> read(d)[1]
1
>>> append(d, [a] * 3, max_bytes=600)  # past the size: the old lines move to alerts.jsonl.1
>>> (d / PREVIOUS).exists(), len(read(d)[0])
(True, 5)
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from twin.schemas import Alert

__all__ = ["FILE", "PREVIOUS", "ROTATE_BYTES", "append", "read"]

FILE = "alerts.jsonl"
PREVIOUS = FILE + ".1"
ROTATE_BYTES = 32 << 20
"""Size at which the journal is rotated (about 100,000 alerts)."""


def append(directory: Path, alerts: Iterable[Alert], max_bytes: int = ROTATE_BYTES) -> None:
    """Append ``alerts`` (one JSON line each) to ``directory/alerts.jsonl``; a file past ``max_bytes``
    is first moved to ``alerts.jsonl.1`` (replacing the previous one), so the journal stays bounded at
    about twice ``max_bytes`` while the last ``max_bytes`` of alerts remain readable."""
    data = b"".join(a.to_json_bytes() + b"\n" for a in alerts)
    if not data:
        return
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE
    try:
        if path.stat().st_size + len(data) > max_bytes:
            os.replace(path, directory / PREVIOUS)
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read(directory: Path, max_bytes: int = 64 << 20) -> tuple[list[Alert], int]:
    """The journal's alerts, oldest first (the rotated file's, then the current one's), and the
    number of lines that were not alerts (the last ``max_bytes`` only: a journal is read whole on
    each request)."""
    data = b""
    for name in (FILE, PREVIOUS):  # newest first, then prepend the older file's tail
        try:
            with (directory / name).open("rb") as f:
                size = f.seek(0, os.SEEK_END)
                want = max_bytes - len(data)
                if want <= 0:
                    break
                f.seek(max(0, size - want))
                data = f.read() + data
        except FileNotFoundError:
            continue
    lines = data.split(b"\n")
    if len(data) >= max_bytes and lines:
        lines = lines[1:]  # cut mid-line
    alerts, bad = [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            alerts.append(Alert.model_validate_json(line))
        except ValidationError:
            bad += 1
    return alerts, bad
