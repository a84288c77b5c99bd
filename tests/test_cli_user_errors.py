"""A user's mistake on the command line gets a message naming the option (or argument) and the
value, exit code 2 and no traceback, before anything starts: ``twin sim``, ``twin bench sim``, the
``--scenario`` of the demo and the emulator benchmarks, ``twin schema export`` onto a file, the
demo's ``--out`` over a state folder it did not write. Also: ``--no-json`` of ``twin bench
gap-models`` and ``twin bench fidelity`` prints indented JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from twin.cli import _load_plugins, app

REPO = Path(__file__).resolve().parent.parent
SHIPPED = "(fault-midrun, suburban-quiet, urban-hotspots)"


@pytest.fixture(scope="module")
def cli() -> CliRunner:
    _load_plugins()  # every command, the deferred benchmarks and the demo included
    return CliRunner()


def _twin(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """``twin ARGS`` as a user runs it, in a process of its own."""
    return subprocess.run([sys.executable, "-m", "twin", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, stdin=subprocess.DEVNULL)


def _refused(result: Result, *must_name: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    for part in must_name:
        assert part in result.output, (part, result.output)


# -- twin bench sim, twin sim evaluate ----------------------------------------------------------------


def test_bench_sim_with_no_cells_is_refused_end_to_end(tmp_path: Path) -> None:
    done = _twin("bench", "sim", "--cells", "0", "--json", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == "", (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert "'--cells'" in done.stderr and "greater than or equal to 1" in done.stderr, done.stderr


@pytest.mark.parametrize(("args", "option", "bound"), [
    (["bench", "sim", "--cells", "0"], "--cells", "1"),
    (["bench", "sim", "--ues", "0"], "--ues", "1"),
    (["sim", "evaluate", "--rings", "-1"], "--rings", "0"),
    (["sim", "evaluate", "--ues", "0"], "--ues", "1"),
])
def test_sim_sizes_below_their_bound_are_refused(cli: CliRunner, args: list[str], option: str, bound: str) -> None:
    # typer's min= check: it names the option and the bound (typer 0.29 does not repeat the value)
    _refused(cli.invoke(app, args), f"'{option}'", f"greater than or equal to {bound}")


def test_bench_sim_with_an_unknown_precision_is_refused(cli: CliRunner) -> None:
    _refused(cli.invoke(app, ["bench", "sim", "--sionna-precision", "half"]), "--sionna-precision", "'half'")


# -- --scenario -------------------------------------------------------------------------------------


def test_demo_with_an_unknown_scenario_is_refused_end_to_end(tmp_path: Path) -> None:
    done = _twin("demo", "--scenario", "nosuch", "--quiet", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert f"--scenario 'nosuch' is neither a shipped scenario {SHIPPED} nor a TOML file" in done.stderr
    assert not (tmp_path / "out").exists()  # nothing started, nothing written


@pytest.mark.parametrize("command", [["bench", "e2e"], ["bench", "soak"]])
def test_a_live_benchmark_with_an_unknown_scenario_is_refused(cli: CliRunner, command: list[str],
                                                              tmp_path: Path) -> None:
    extra = ["--work", str(tmp_path / "work")] if command[1] == "soak" else []
    _refused(cli.invoke(app, [*command, "--scenario", "nosuch", "--json", *extra]),
             f"--scenario 'nosuch' is neither a shipped scenario {SHIPPED} nor a TOML file")
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("command", ["gap-models", "fidelity"])
def test_an_emulator_benchmark_with_an_unknown_scenario_is_refused(cli: CliRunner, command: str) -> None:
    # as optimize, sim2real and mr-ceiling: shipped scenarios only (replay.bench_options)
    _refused(cli.invoke(app, ["bench", command, "--scenario", "fault-midrun", "--scenario", "nosuch", "--json"]),
             "--scenario 'nosuch' is not a shipped scenario (urban-hotspots, suburban-quiet, fault-midrun)")


def test_a_scenario_file_that_is_not_a_scenario_is_refused(cli: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[colour]\nred = 1\n")
    _refused(cli.invoke(app, ["demo", "--scenario", str(bad), "--out", str(tmp_path / "out")]),
             f"--scenario {str(bad)!r}", "unknown section(s) colour")
    broken = tmp_path / "broken.toml"
    broken.write_text("name = \n")
    _refused(cli.invoke(app, ["bench", "e2e", "--scenario", str(broken)]), f"--scenario {str(broken)!r}")
    assert not (tmp_path / "out").exists()


def test_scenario_option_takes_a_shipped_name_or_a_toml_file(tmp_path: Path) -> None:
    from replay.emulator import load_scenario
    from replay.emulator.scenario import _packaged
    from streams.demo import scenario_option

    assert scenario_option("suburban-quiet") == load_scenario("suburban-quiet")
    copy = tmp_path / "mine.toml"
    copy.write_text(_packaged()["fault-midrun"].read_text(encoding="utf-8"))
    assert scenario_option(str(copy)) == load_scenario(copy)


# -- twin schema export --------------------------------------------------------------------------------


def test_schema_export_onto_a_file_is_refused(cli: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "schemas"
    target.write_text("not a folder")
    _refused(cli.invoke(app, ["schema", "export", str(target)]), "DIRECTORY", str(target), "not a folder")
    assert target.read_text() == "not a folder"
    inside = target / "deeper"  # a parent is a file
    _refused(cli.invoke(app, ["schema", "export", str(inside)]), "DIRECTORY", str(inside), "cannot be created")


# -- twin demo --out -------------------------------------------------------------------------------------


def test_demo_refuses_a_state_folder_it_did_not_write(cli: CliRunner, tmp_path: Path) -> None:
    """``twin demo --out .`` in a worker's folder: its ``state`` (the worker's default state_dir)
    holds checkpoints the demo must not delete."""
    checkpoint = tmp_path / "state" / "twin-worker" / "c1.ckpt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"precious")
    _refused(cli.invoke(app, ["demo", "--out", str(tmp_path), "--quiet"]),
             f"--out {str(tmp_path)!r}", "was not written by `twin demo`", ".twin-demo")
    assert checkpoint.read_bytes() == b"precious"
    assert not (tmp_path / "twin.toml").exists()


def test_demo_out_checks(tmp_path: Path) -> None:
    from streams.demo import DEMO_STATE_MARKER, _check_out, _fresh_state

    out = tmp_path / "out"
    assert _check_out(out) == out / "state"  # nothing there yet
    (out / "state").mkdir(parents=True)
    assert _check_out(out) == out / "state"  # an empty folder: nothing to lose
    _fresh_state(out / "state")
    assert (out / "state" / DEMO_STATE_MARKER).is_file()
    (out / "state" / "twin-demo").mkdir()
    (out / "state" / "cm-ledger.sqlite").write_bytes(b"old run")
    assert _check_out(out) == out / "state"  # a previous demo's: deleted for a fresh start
    _fresh_state(out / "state")
    assert sorted(p.name for p in (out / "state").iterdir()) == [DEMO_STATE_MARKER]
    (out / "state" / DEMO_STATE_MARKER).unlink()
    (out / "state" / "x").write_text("")
    with pytest.raises(typer.Exit) as refused:
        _check_out(out)
    assert refused.value.exit_code == 2
    shutil.rmtree(out / "state")
    (out / "state").write_text("a file")
    with pytest.raises(typer.Exit):
        _check_out(out)
    with pytest.raises(typer.Exit):
        _check_out(out / "state")  # --out is a file


# -- --no-json ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("command", "runner"), [("gap-models", "replay.bench_gap.run_gap_models"),
                                                 ("fidelity", "replay.bench_fidelity.run_fidelity")])
def test_no_json_prints_indented_json(cli: CliRunner, monkeypatch: pytest.MonkeyPatch, command: str,
                                      runner: str) -> None:
    doc: dict[str, Any] = {"benchmark": command, "scenarios": {"fault-midrun": {"x": 1.5}}}
    seen: list[tuple[Any, ...]] = []

    def run(*args: Any) -> dict[str, Any]:  # the benchmark itself takes minutes
        seen.append(args)
        return doc

    monkeypatch.setattr(runner, run)
    compact = cli.invoke(app, ["bench", command, "--scenario", "fault-midrun", "--json"])
    assert compact.exit_code == 0, compact.output
    assert compact.stdout == json.dumps(doc) + "\n"
    person = cli.invoke(app, ["bench", command, "--scenario", "fault-midrun", "--no-json"])
    assert person.exit_code == 0, person.output
    assert person.stdout == json.dumps(doc, indent=2) + "\n"
    assert all(["fault-midrun"] in a for a in seen)
