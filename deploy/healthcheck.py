#!/usr/bin/env python3
"""The container's health check (``twin-healthcheck`` in the image; stdlib only, so it runs in any
service of the image): exit 0 when the service is healthy, 1 with the reason on stderr when not.

``TWIN_HEALTHCHECK`` says what to look at, so one image serves the worker, the API and the CM service:

- ``stats:PATH`` (the default, ``stats:/run/ran-twin/worker-stats.json``): the worker's stats file
  says ``"ready": true`` (consumer groups assigned, the broker answering) and was written within the
  last ``TWIN_HEALTHCHECK_MAX_AGE_S`` seconds (default 30; the worker writes it twice a second);
- ``http://...`` or ``https://...``: a GET answers 2xx (the API's ``/api/v1/health``).

>>> check("bogus:x")
Traceback (most recent call last):
...
ValueError: TWIN_HEALTHCHECK 'bogus:x' is neither stats:PATH nor an http(s):// URL
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT = "stats:/run/ran-twin/worker-stats.json"


def check(target: str, max_age_s: float = 30.0, timeout_s: float = 3.0) -> str | None:
    """None when healthy, else why not."""
    if target.startswith("stats:"):
        path = Path(target.removeprefix("stats:"))
        try:
            age = time.time() - path.stat().st_mtime
            stats = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            return f"cannot read the stats file {path}: {exc}"
        if age > max_age_s:
            return f"the stats file {path} is {age:.0f} s old (more than {max_age_s:g} s): the worker is stuck"
        if stats.get("ready") is not True:
            return f"the worker is not ready ({path}: ready={stats.get('ready')!r})"
        return None
    if target.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(target, timeout=timeout_s) as response:
                return None if 200 <= response.status < 300 else f"GET {target}: HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            return f"GET {target}: HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            return f"GET {target}: {exc}"
    raise ValueError(f"TWIN_HEALTHCHECK {target!r} is neither stats:PATH nor an http(s):// URL")


def main() -> int:
    target = os.environ.get("TWIN_HEALTHCHECK", DEFAULT)
    try:
        problem = check(target, float(os.environ.get("TWIN_HEALTHCHECK_MAX_AGE_S", "30")))
    except ValueError as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 2
    if problem is not None:
        print(f"healthcheck: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
