"""`twin run` splits the validation work over its two processes, with the real broker."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from streams.broker import EmbeddedBroker
from streams.stats import read_stats_file
from tests.helpers import child_processes, publish, wait_for
from tests.integration.test_worker_recovery import _clusters, _start, _stream, _write_config
from twin.synthetic import SyntheticNetwork


def test_both_processes_validate_and_the_mirror_gets_everything_once(fresh_broker: EmbeddedBroker,
                                                                     tmp_path: Path) -> None:
    net = SyntheticNetwork(cells=24, seed=8)
    records = _stream(net)
    bootstrap = fresh_broker.bootstrap_servers
    asyncio.run(publish(bootstrap, records))  # a backlog: whoever started first could take it all

    config = _write_config(tmp_path / "w.toml", tmp_path / "state", _clusters(net), "split")
    parent_stats, child_stats = tmp_path / "w.json", tmp_path / "w.json.rekey"
    worker = _start(config, bootstrap, "w", parent_stats, tmp_path / "w.log")
    try:
        wait_for(lambda: read_stats_file(parent_stats).get("recordsApplied", 0) >= len(records), 120,
                 "the mirror to apply the whole stream")
        # the re-keying member loads neither the prediction path (numba's LLVM, river) nor the store
        rekey = _rekey_child(worker.pid)
        maps, parent_maps = (Path(f"/proc/{pid}/maps").read_text() for pid in (rekey, worker.pid))
        assert "llvmlite" in parent_maps and "llvmlite" not in maps
        open_files = [str(fd.readlink()) for fd in Path(f"/proc/{rekey}/fd").iterdir()]
        assert not [f for f in open_files if str(tmp_path / "state") in f], open_files
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    parent, child = read_stats_file(parent_stats), read_stats_file(child_stats)
    # both processes re-keyed part of the backlog (the start barrier held the first one back) ...
    assert parent["consumed"] > 0 and child["consumed"] > 0, (parent["consumed"], child["consumed"])
    # ... without a rebalance in between that would have made one of them read records again
    assert parent["consumed"] + child["consumed"] == len(records)
    # the mirror (in the parent) applied every record once: its own locally, the child's via the topic
    assert parent["recordsApplied"] == len(records)
    assert child["recordsApplied"] == 0 and parent["deadLetteredTotal"] == child["deadLetteredTotal"] == 0


def _rekey_child(pid: int) -> int:
    """The re-keying member ``twin run`` started (its command line carries ``--sibling-fds``)."""
    members = [c for c, cmd in child_processes(pid).items() if b"--sibling-fds" in cmd]
    assert members, f"no re-keying child under {pid}"
    return members[0]
