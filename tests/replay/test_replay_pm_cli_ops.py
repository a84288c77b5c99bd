"""``twin replay`` exit codes and options for PM files (issue 14 §1, operations), run as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.replay.test_replay_cli import twin
from tests.replay.test_replay_pm_variants import LTE_CELL, info, pm_file
from twin import topics


def test_a_run_that_publishes_nothing_fails(tmp_path: Path) -> None:
    naive = '<granPeriod duration="PT15M" endTime="2000-03-01T15:00:00"/>'
    (tmp_path / "a.xml").write_bytes(pm_file(info(["c"], [(LTE_CELL, ["1"]), (LTE_CELL + "0", ["2"])], gran=naive)))
    proc = twin("replay", str(tmp_path), "-f", "pm-xml", "--dry-run", "--json")
    assert proc.returncode == 1, proc.stderr
    assert "nothing published: all 2 input units were rejected" in proc.stderr
    out = json.loads(proc.stdout)  # the report is still printed
    assert out["rowsRejected"] == 2 and out["rowsPublished"] == 0
    # The same files read with the zone they were written in.
    ok = twin("replay", str(tmp_path), "-f", "pm-xml", "--dry-run", "--json", "--timezone", "Europe/Paris")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["firstEventTime"] == "2000-03-01T14:00:00+00:00"
    bad_zone = twin("replay", str(tmp_path), "-f", "pm-xml", "--dry-run", "--timezone", "Mars/Base")
    assert bad_zone.returncode == 2 and "--timezone 'Mars/Base' is not an IANA time zone" in bad_zone.stderr


def test_strict_fails_on_any_rejection_of_the_real_files(pm_files_dir: Path) -> None:
    proc = twin("replay", str(pm_files_dir), "--format", "pm-xml", "--dry-run", "--json", "--strict")
    assert proc.returncode == 1
    assert "--strict: 94 of 291 input units were rejected" in proc.stderr
    assert json.loads(proc.stdout)["published"] == {topics.PM_CELL: 53, topics.PM_RELATION: 10}


def test_the_summary_shows_each_kind_of_reason(tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_bytes(
        pm_file(
            info(["c"], [(LTE_CELL, ["1"]), ("ManagedElement=site1,Transport=1,VlanPort=1", ["1"])]),
            info(["c"], [("NRCellDU", ["1"]), ("", ["1"])]),
        )
    )
    proc = twin("replay", str(tmp_path), "-f", "pm-xml", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())  # the console wraps long lines to the terminal width
    assert "object class 'VlanPort' is not one the twin models" in text
    assert "RDN 'NRCellDU' is not Class=id" in text
    assert "measObjLdn is empty" in text


def test_vector_rules_option(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.xml").write_bytes(pm_file(info(["pmHoTimeSpread"], [(LTE_CELL, ["2,0,4,3,8"])])))
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\ncounter = "pmHoTimeSpread"\nlayout = "pairs"\n')
    plain = json.loads(twin("replay", str(src), "-f", "pm-xml", "--dry-run", "--json").stdout)
    assert any("ambiguous" in w for w in plain["warnings"])
    ruled = twin("replay", str(src), "-f", "pm-xml", "--dry-run", "--json", "--vector-rules", str(rules))
    assert ruled.returncode == 0, ruled.stderr
    assert not any("ambiguous" in w for w in json.loads(ruled.stdout)["warnings"])
    rules.write_text('[[rule]]\ncounter = "x"\nlayout = "zip"\n')
    bad = twin("replay", str(src), "-f", "pm-xml", "--dry-run", "--vector-rules", str(rules))
    assert bad.returncode == 2 and "layout='zip' is not one of bins, pairs, raw" in bad.stderr
