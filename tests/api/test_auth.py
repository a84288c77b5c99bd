"""Tokens: the file and the environment, errors that name the entry and field, the CLI's help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from twin.api.auth import ENV_OPERATOR, ENV_VIEWER, generate_tokens, load_tokens

ROOT = Path(__file__).resolve().parents[2]


def test_tokens_from_file_and_environment(tmp_path: Path) -> None:
    made = generate_tokens(tmp_path / "tokens.toml")
    env = {ENV_VIEWER: "v" * 20 + ", " + "w" * 20, ENV_OPERATOR: "o" * 24}
    store = load_tokens(tmp_path / "tokens.toml", environ=env)
    assert len(store) == 5
    assert store.lookup(made["operator"]).role == "operator"  # type: ignore[union-attr]
    assert store.lookup("w" * 20).name == "viewer-env-2"  # type: ignore[union-attr]
    assert store.lookup("o" * 24).role == "operator"  # type: ignore[union-attr]
    assert store.lookup("o" * 23) is None and store.lookup("") is None
    assert made["viewer"] not in repr(store) and "demo-viewer (viewer)" in repr(store)


@pytest.mark.parametrize(("text", "message"), [
    ('[[tokens]]\nname = "a"\nrole = "viewer"\ntoken = "short"', "tokens[0].token: a token must be a string of at"),
    ('[[tokens]]\nname = "a"\nrole = "root"\ntoken = "0123456789abcdef"', "tokens[0].role: 'root' is not a role"),
    ('[[tokens]]\nname = "a"\nrole = "viewer"\ntoken = "0123456789abcdef"\nexpires = 1', "tokens[0].expires: unknown"),
    ('[[tokens]]\nrole = "viewer"\ntoken = "0123456789abcdef"', "tokens[0].name: a non-empty string"),
    ('[[tokens]]\nname = "a"\nrole = "viewer"\ntoken = "0123456789 abcdef"', "must not contain white space"),
    ("tokens = 3", "no [[tokens]] entries"),
    ("[[tokens]\n", "not TOML"),
])
def test_bad_tokens_file_names_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=None) as exc:
        load_tokens(path, environ={})
    assert message in str(exc.value) and str(path) in str(exc.value)


def test_no_tokens_and_duplicates(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no API tokens"):
        load_tokens(None, environ={})
    with pytest.raises(ValueError, match=rf"{ENV_VIEWER}\[0\]"):
        load_tokens(None, environ={ENV_VIEWER: "short"})
    with pytest.raises(ValueError, match="the same token is given twice"):
        load_tokens(None, environ={ENV_VIEWER: "x" * 20, ENV_OPERATOR: "x" * 20})


def test_cli_help_and_missing_tokens(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    helped = subprocess.run([sys.executable, "-m", "twin", "api", "--help"], cwd=ROOT, capture_output=True,
                            text=True, env=env, timeout=60)
    assert helped.returncode == 0
    for needle in ("--tokens", "[[tokens]]", ENV_VIEWER, ENV_OPERATOR, "--state-dir", "--port", "Bearer"):
        assert needle in helped.stdout, needle
    refused = subprocess.run([sys.executable, "-m", "twin", "api", "--state-dir", str(tmp_path)], cwd=ROOT,
                             capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode == 2 and "no API tokens" in refused.stderr
