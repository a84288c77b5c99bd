"""``twin cm``: list --json, show, approve, reject, rollback and the kill switch on a worker's ledger,
with the change runner acting on the decisions against the real emulated network."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from tests.cm.util import FaultyAdapter, make_emulator, request
from twin.cli import _load_plugins, app
from twin.guard import GuardPolicy
from twin.ledger import State, open_ledger
from twin.rollout import ChangeRunner

cli = CliRunner()
_load_plugins()
REPO = Path(__file__).resolve().parents[2]


def run(*args: str) -> tuple[int, str]:
    result = cli.invoke(app, ["cm", *args])
    return result.exit_code, result.output


def test_operator_commands_drive_the_changes_through_the_runner(tmp_path: Path) -> None:
    url = str(tmp_path / "cm-ledger.sqlite")
    emu = make_emulator()
    runner = ChangeRunner(open_ledger(url), GuardPolicy(mode="manual", max_cells_per_cluster=5), FaultyAdapter(emu))
    for _ in range(4):
        emu.step()
        runner.observe("c1", emu.period_end, {"DRB.UEThpDl": 50.0})
    now = emu.period_end
    a, b, c = (request(emu, emu.cells[k], "cellIndividualOffset", 2.0) for k in range(3))
    bad = request(emu, emu.cells[3], "cellIndividualOffset", 9.0)
    for r in (a, b, c, bad):
        runner.submit(r, "c1", now)

    code, out = run("list", "--json", "--ledger", url)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 4
    assert all({"changeId", "cellKey", "attribute", "from", "to", "state", "decidedBy", "reason"} <= set(r)
               for r in rows)
    by_id = {r["changeId"]: r for r in rows}
    assert by_id[bad.change_id]["state"] == "REJECTED" and by_id[bad.change_id]["decidedBy"] == "guard"
    assert "bounds: NRCellDU.cellIndividualOffset=9.0 is outside [-6, 6]" in by_id[bad.change_id]["reason"]
    assert by_id[a.change_id]["state"] == "PENDING_APPROVAL"

    assert run("approve", a.change_id, "--by", "alice", "--ledger", url)[0] == 0
    assert run("reject", b.change_id, "--by", "bob", "--reason", "storm tonight", "--ledger", url)[0] == 0
    # the rejection ends the change: its result waits in the outbox for twin cm serve (the default
    # [cm] adapter's transport), beside the results the runner recorded
    owed = [json.loads(r.body) for r in runner.ledger.outbox(after=0) if r.change_id == b.change_id]
    assert owed == [{"schemaVersion": "1", "changeId": b.change_id, "cellKey": b.cell_key, "state": "REJECTED",
                     "transport": "EMULATOR", "error": "rejected by bob: storm tonight"}], owed
    code, out = run("approve", bad.change_id, "--by", "alice", "--ledger", url)
    assert code == 1 and "is REJECTED; this needs PENDING_APPROVAL" in out
    runner.tick(now)  # the worker acts on the decisions
    assert runner.ledger.get(a.change_id).state is State.OBSERVING and runner.ledger.get(a.change_id).decided_by \
        == "alice"
    assert emu.oss.read(a.target_dn)["cellIndividualOffset"] == 2.0

    assert run("rollback", a.change_id, "--by", "carol", "--reason", "complaints", "--ledger", url)[0] == 0
    runner.tick(now)
    assert runner.ledger.get(a.change_id).state is State.ROLLED_BACK
    assert emu.oss.read(a.target_dn)["cellIndividualOffset"] == a.from_

    assert run("kill-switch", "on", "--by", "dave", "--ledger", url) == (0, "kill switch on (by dave)\n")
    assert run("kill-switch", "--ledger", url) == (0, "on\n")
    assert run("approve", c.change_id, "--by", "alice", "--ledger", url)[0] == 0
    runner.tick(now)
    refused = runner.ledger.get(c.change_id)
    assert refused.state is State.REJECTED and "kill_switch" in (refused.reason or "")

    code, out = run("show", b.change_id, "--ledger", url)
    shown = json.loads(out)
    assert code == 0 and shown["state"] == "DENIED" and shown["reason"] == "storm tonight"
    assert [h["step"] for h in shown["history"]] == ["REQUESTED", "PENDING_APPROVAL", "DENIED"]
    assert run("show", "nope", "--ledger", url)[0] == 1
    assert run("kill-switch", "maybe", "--ledger", url)[0] == 2
    code, out = run("list", "--state", "bogus", "--ledger", url)
    assert code == 2 and "'bogus' is not a change state" in out


def test_the_installed_command_prints_one_object_per_change(tmp_path: Path) -> None:
    url = str(tmp_path / "l.sqlite")
    emu = make_emulator()
    ChangeRunner(open_ledger(url), GuardPolicy(), FaultyAdapter(emu)).submit(
        request(emu, emu.cells[0], "cellIndividualOffset", 1.0), "c1", emu.period_end)
    out = subprocess.run([str(REPO / ".venv/bin/twin"), "cm", "list", "--json", "--ledger", url], check=True,
                         capture_output=True, text=True).stdout
    assert json.loads(out)["state"] == "PENDING_APPROVAL"  # the default policy is manual approval


def test_propose_searches_a_workers_mirror_and_publishes_the_requests(emulated_worker_run: Any,
                                                                      broker: Any) -> None:
    """On the state a real worker checkpointed (the session's emulated worker run)."""
    import asyncio

    from tests.helpers import consume_all
    from tests.library.worker_run import GROUP
    from twin import topics
    from twin.schemas import CmChangeRequest

    run_ = emulated_worker_run
    env = {"TWIN_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers}
    result = cli.invoke(app, ["cm", "propose", "--config", str(run_.config_file), "--state-dir",
                              str(run_.state_dir / GROUP), "--cluster", "west", "--budget", "25", "--json",
                              "--publish"], env=env)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("{")]
    proposals = [CmChangeRequest.model_validate_json(line) for line in lines]
    assert proposals and all(p.requester == "optimizer" and p.cell_key in run_.clusters["west"] for p in proposals)
    assert all("objective" in p.expected_kpi_impact and p.twin_version for p in proposals)
    got = asyncio.run(consume_all(broker.bootstrap_servers, topics.CHANGE_REQUESTS, len(proposals), timeout_s=20))
    assert sorted(CmChangeRequest.model_validate_json(v or b"").change_id for v in got) == \
        sorted(p.change_id for p in proposals)
    bad = cli.invoke(app, ["cm", "propose", "--config", str(run_.config_file), "--state-dir",
                           str(run_.state_dir / GROUP), "--cluster", "north"])
    assert bad.exit_code == 1 and "'north' is not in the mirror" in bad.output


def test_a_bad_ledger_gets_one_line_naming_it_and_nothing_is_created(tmp_path: Path) -> None:
    not_db = tmp_path / "notes.sqlite"
    not_db.write_text("not a database\n")
    typo = tmp_path / "typo.sqlite"
    for args, code, says in [
        (["list", "--ledger", "foo://bar"], 2, "'foo://bar'"),
        (["show", "x", "--ledger", str(not_db)], 1, f"ledger '{not_db}' cannot be opened"),
        (["kill-switch", "--ledger", str(tmp_path)], 1, f"no ledger at {tmp_path}"),
        (["kill-switch", "--ledger", f"sqlite:///{typo}"], 1, f"no ledger at sqlite:///{typo}"),
    ]:
        result = cli.invoke(app, ["cm", *args])
        assert result.exit_code == code, (args, result.output)
        assert says in result.output and "Traceback" not in result.output, (args, result.output)
        assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), args
    assert not typo.exists()  # a mistyped sqlite:/// URL does not leave an empty ledger behind


def test_propose_skips_a_cluster_without_pm_and_says_so(tmp_path: Path) -> None:
    config = tmp_path / "twin.toml"
    config.write_text('[topology]\nclusters = [{id = "c1", cells = ["nr:00101-000000101"]}]\n')
    (tmp_path / "state").mkdir()  # a worker that started and mirrored no PM yet
    result = cli.invoke(app, ["cm", "propose", "--config", str(config), "--state-dir", str(tmp_path / "state")])
    assert result.exit_code == 1, result.output
    assert "c1: skipped, no PM period mirrored yet" in result.output
    assert "nothing to search" in result.output and "Traceback" not in result.output


def test_cm_serve_refuses_the_in_process_emulator_adapter_and_a_bad_ledger_in_one_line(tmp_path: Path) -> None:
    env = {"TWIN_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1", "TWIN_STATE_DIR": str(tmp_path)}  # nothing is reached
    result = cli.invoke(app, ["cm", "serve"], env=env)
    assert result.exit_code == 2 and "[cm] adapter 'emulator'" in result.output, result.output
    assert "netconf, provmns or bulkcm" in result.output
    config = tmp_path / "twin.toml"
    config.write_text('[cm]\nadapter = "provmns"\nadapter_options = {base_url = "https://oss.example:8443"}\n'
                      'ledger = "foo://bar"\n')
    result = cli.invoke(app, ["cm", "serve", "--config", str(config)], env=env)
    assert result.exit_code == 2 and "[cm] ledger 'foo://bar' cannot be opened" in result.output, result.output
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback
