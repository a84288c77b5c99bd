"""Inputs that broke a reader in ways it did not foresee (found by an audit): each ends in
rejections naming the file and the row, the replay goes on with the other files, and every row read
is published or rejected, never a traceback. Built from the real Raca CSVs and PM files."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

from tests.replay.test_replay_cli import twin


def _replay(*args: str) -> dict:
    proc = twin("replay", *args, "--dry-run", "--json")
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


def test_raca_rows_with_nan_ids_bare_returns_and_overflowing_times_are_rejected_by_row(raca_dir: Path,
                                                                                       tmp_path: Path) -> None:
    real = sorted(raca_dir.rglob("*.csv"))[0]
    lines = real.read_bytes().splitlines()
    header = lines[0].decode().split(",")
    row = lines[1].decode().split(",")

    def variant(**cols: str) -> bytes:
        out = list(row)
        for name, value in cols.items():
            out[header.index(name)] = value
        return ",".join(out).encode()

    bad = [variant(RAWCELLID="nan"), variant(RAWCELLID="inf"), variant(Timestamp="0001.01.01_00.00.00"),
           variant(Operatorname="a\rb")]
    (tmp_path / real.name).write_bytes(b"\n".join([*lines, *bad]) + b"\n")
    out = _replay(str(tmp_path), "-f", "raca", "--timezone", "Asia/Tokyo")
    assert out["rowsRead"] == len(lines) - 1 + len(bad) == out["rowsPublished"] + out["rowsRejected"]
    reasons = {r["where"]: r["reason"] for r in out["rejected"]}
    first_bad = len(lines) + 1
    assert "RAWCELLID='nan'" in reasons[f"line {first_bad}"] and "RAWCELLID='inf'" in reasons[f"line {first_bad + 1}"]
    assert "not a valid date/time" in reasons[f"line {first_bad + 2}"]
    assert "row is not CSV" in reasons[f"line {first_bad + 3}"]


def test_a_truncated_gzip_and_a_broken_zip_are_rejected_and_the_other_files_replayed(pm_files_dir: Path,
                                                                                       tmp_path: Path) -> None:
    good = sorted(p for p in pm_files_dir.rglob("*.xml"))[0]
    (tmp_path / "good.xml").write_bytes(good.read_bytes())
    packed = gzip.compress(good.read_bytes())
    (tmp_path / "cut.xml.gz").write_bytes(packed[: len(packed) // 2])
    with zipfile.ZipFile(tmp_path / "pm.zip", "w") as zf:
        zf.writestr("a.xml", good.read_bytes())
    raw = (tmp_path / "pm.zip").read_bytes()
    (tmp_path / "pm.zip").write_bytes(raw[: len(raw) - 30])  # the central directory cut
    alone = _replay(str(tmp_path / "good.xml"), "-f", "pm-xml")
    out = _replay(str(tmp_path / "good.xml"), str(tmp_path / "cut.xml.gz"), str(tmp_path / "pm.zip"), "-f", "pm-xml")
    assert out["rowsPublished"] == alone["rowsPublished"] > 0  # the good file, whole
    unreadable = {r["source"]: r["reason"] for r in out["rejected"] if r["where"] == "file"}
    assert "EOFError" in unreadable["cut.xml.gz"] or "BadGzipFile" in unreadable["cut.xml.gz"], unreadable
    assert "pm.zip" in unreadable  # no longer a zip (its directory cut): rejected whole, named
    assert out["rowsRead"] == out["rowsPublished"] + out["rowsRejected"]


def test_pm_xml_in_an_unknown_encoding_is_rejected_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "odd.xml").write_bytes(b'<?xml version="1.0" encoding="bogus-enc"?><measCollecFile/>')
    out = _replay(str(tmp_path / "odd.xml"), "-f", "pm-xml")
    assert out["rowsPublished"] == 0 and out["rejected"][0]["source"] == "odd.xml", out
    assert "bogus-enc" in out["rejected"][0]["reason"] or "LookupError" in out["rejected"][0]["reason"]


def test_inputs_larger_than_the_bound_are_rejected_whole_and_the_others_replayed(pm_files_dir: Path,
                                                                                 tmp_path: Path) -> None:
    """Each input is read whole, so a gzip of a few kilobytes that decompresses to gigabytes used to
    take the replay's memory. Above ``--max-input-mib`` a file, a gzip stream (read no further than
    the bound) and a zip member (by its declared size) are each rejected as one unit."""
    good = sorted(p for p in pm_files_dir.rglob("*.xml"))[0]
    assert good.stat().st_size < 1 << 20
    (tmp_path / "good.xml").write_bytes(good.read_bytes())
    bomb = good.read_bytes() + b"<!--" + b" " * (64 << 20) + b"-->"  # 64 MiB once decompressed
    (tmp_path / "bomb.xml.gz").write_bytes(gzip.compress(bomb, compresslevel=9))
    assert (tmp_path / "bomb.xml.gz").stat().st_size < 1 << 20
    (tmp_path / "big.xml").write_bytes(bomb[: 3 << 20])
    with zipfile.ZipFile(tmp_path / "pm.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("inner.xml", bomb)
    alone = _replay(str(tmp_path / "good.xml"), "-f", "pm-xml")
    out = _replay(str(tmp_path), str(tmp_path / "pm.zip"), "-f", "pm-xml", "--max-input-mib", "2")
    assert out["rowsPublished"] == alone["rowsPublished"] > 0  # the good file, whole
    too_large = {r["source"]: r["reason"] for r in out["rejected"] if r["where"] == "file"}
    assert set(too_large) == {"bomb.xml.gz", "big.xml", "pm.zip!inner.xml"}, too_large
    assert "decompresses to more than 2,097,152 bytes" in too_large["bomb.xml.gz"]
    assert f"holds {3 << 20:,} bytes, more than 2,097,152" in too_large["big.xml"]
    assert f"holds {len(bomb):,} bytes, more than 2,097,152" in too_large["pm.zip!inner.xml"]
