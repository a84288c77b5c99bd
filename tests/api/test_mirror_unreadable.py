"""A worker's checkpoint store that cannot be read (damaged, or not an SQLite file) is a 503 naming
the store on every route that reads the mirror, a readiness reason, and no mirror series in
``/metrics``: never a 500, and the store is left as it was."""

from __future__ import annotations

import gc
import time
from pathlib import Path

import httpx

from tests.api.test_api_input_abuse import serve
from twin.mirror.store import DB_NAME


def test_an_unreadable_store_is_a_503_naming_it(tmp_path: Path) -> None:
    api = serve(tmp_path, str(tmp_path / "cm-ledger.sqlite"))
    store = tmp_path / "state" / "twin-worker" / DB_NAME
    junk = b"not a database " * 1000
    gc.collect()  # the store connection ``serve`` opened closes now, not over the junk later
    for side in ("-wal", "-shm"):  # the store as a damaged disk leaves it: no log beside it
        Path(f"{store}{side}").unlink(missing_ok=True)
    store.write_bytes(junk)
    time.sleep(1.1)  # past the API's one-second reuse of a mirror it read (when it read one before)
    try:
        with api.client("viewer") as c:
            for path in ("/api/v1/clusters", "/api/v1/cells", "/api/v1/clusters/north",
                         "/api/v1/cells/nr:00101-000000101"):
                r = c.get(path)
                assert r.status_code == 503, (path, r.status_code, r.text)
                assert f"checkpoint store {store} cannot be read" in r.json()["error"], r.text
            ready = c.get("/api/v1/ready")
            assert ready.status_code == 503 and any("cannot be read" in reason for reason in ready.json()["reasons"])
            assert httpx.get(f"{api.running.url}/metrics").status_code == 200
            assert c.get("/api/v1/health").status_code == 200
    finally:
        api.running.stop()
    assert store.read_bytes() == junk
