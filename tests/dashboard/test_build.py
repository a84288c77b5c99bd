"""The committed dashboard build (twin/api/static/) matches its sources (web/) and loads nothing remote.

`make web` (npm ci && npm run build) writes build-info.json with a hash of every source file and of
every file it wrote; this test recomputes both the same way (web/scripts/stamp.mjs), so a source
edit that was not rebuilt, or a build edited by hand, fails here instead of shipping silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
STATIC = ROOT / "twin" / "api" / "static"
SKIP = {"node_modules", "dist"}


def source_files(web: Path) -> list[str]:
    """Every file under ``web`` outside node_modules, as sorted posix paths (stamp.mjs's order)."""
    out = []
    for folder, dirs, files in os.walk(web):
        dirs[:] = [d for d in dirs if d not in SKIP]  # never walk node_modules
        out += [(Path(folder) / f).relative_to(web).as_posix() for f in files]
    return sorted(out, key=lambda p: p.encode())


def source_sha256(web: Path, files: list[str]) -> str:
    """The sources' combined hash: sha256 over "path NUL sha256(content) LF" per file."""
    total = hashlib.sha256()
    for f in files:
        digest = hashlib.sha256((web / f).read_bytes()).hexdigest()
        total.update(f"{f}\0{digest}\n".encode())
    return total.hexdigest()


def test_source_sha256_is_order_and_content_sensitive(tmp_path: Path) -> None:
    (tmp_path / "a.ts").write_text("x")
    (tmp_path / "b.ts").write_text("y")
    one = source_sha256(tmp_path, ["a.ts", "b.ts"])
    assert source_sha256(tmp_path, ["b.ts", "a.ts"]) != one
    (tmp_path / "b.ts").write_text("z")
    assert source_sha256(tmp_path, ["a.ts", "b.ts"]) != one
    assert source_files(tmp_path) == ["a.ts", "b.ts"]


def test_committed_build_matches_sources() -> None:
    info = json.loads((STATIC / "build-info.json").read_text())
    files = source_files(WEB)
    assert info["files"] == files, "web/ has files the build did not see (or lost some): run `make web`"
    assert info["sourceSha256"] == source_sha256(WEB, files), "web/ changed since the build: run `make web`"


def test_committed_build_is_what_the_build_wrote() -> None:
    """No file of twin/api/static/ was edited, added or removed by hand after `make web`."""
    info = json.loads((STATIC / "build-info.json").read_text())
    found = {p.relative_to(STATIC).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in STATIC.rglob("*") if p.is_file() and p.name != "build-info.json"}
    assert found == info["output"], "twin/api/static/ differs from what `make web` wrote: run `make web`"


def test_index_loads_only_relative_assets_that_exist() -> None:
    html = (STATIC / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs, "index.html references no script or stylesheet"
    for ref in refs:
        if ref.startswith("data:"):
            continue  # inline (the empty favicon): no request at all
        assert ref.startswith("./"), f"index.html loads {ref!r}: not a relative URL (a CDN at run time?)"
        assert (STATIC / ref[2:]).is_file(), f"index.html references {ref!r}, missing from the build"
    assert "connect-src 'self'" in html, "the Content-Security-Policy that keeps requests on the origin is gone"


def test_the_package_ships_the_build() -> None:
    """pyproject's package data (setuptools globs them recursively under twin/) covers every built file,
    so a wheel or a non-editable install (the container image) serves the dashboard."""
    import glob
    import tomllib

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["twin"]
    twin = ROOT / "twin"
    shipped = {Path(p).resolve() for pattern in patterns for p in glob.glob(str(twin / pattern), recursive=True)}
    built = [p.resolve() for p in STATIC.rglob("*") if p.is_file()]
    missing = [p.relative_to(ROOT).as_posix() for p in built if p not in shipped]
    assert built and not missing, f"not in [tool.setuptools.package-data] twin: {missing}"
