"""Bearer tokens and roles of the REST API.

Two roles: a **viewer** reads everything and runs what-ifs; an **operator** can also approve,
reject and roll back CM changes and flip the kill switch. Tokens come from a TOML file
(``twin api --tokens FILE``) and/or the environment (``TWIN_API_VIEWER_TOKENS`` and
``TWIN_API_OPERATOR_TOKENS``, comma-separated). The file::

    [[tokens]]
    name = "noc-dashboard"   # who: recorded in the ledger as the decider, shown in logs
    role = "viewer"          # viewer | operator
    token = "at least 16 characters of secret"

A presented token is compared with every known token in constant time (``hmac.compare_digest``,
no early exit), so the comparison leaks neither which token nor how much of it matched. Tokens
are never logged: :class:`TokenStore` does not show them in its ``repr``, and the API logs the
token's *name*.

>>> store = TokenStore([Principal("ann", "operator"), Principal("bob", "viewer")],
...                    ["o" * 20, "v" * 20])
>>> store.lookup("v" * 20)
Principal(name='bob', role='viewer')
>>> store.lookup("x" * 20) is None, store
(True, TokenStore(2 tokens: ann (operator), bob (viewer)))
>>> Principal("ann", "operator").may("operator"), Principal("bob", "viewer").may("operator")
(True, False)
>>> parse_tokens_toml('[[tokens]]\\nname = "x"\\nrole = "admin"\\ntoken = "0123456789abcdef"', "t.toml")
Traceback (most recent call last):
...
ValueError: t.toml: tokens[0].role: 'admin' is not a role (viewer, operator)
"""

from __future__ import annotations

import hmac
import os
import secrets
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["ENV_OPERATOR", "ENV_VIEWER", "MIN_TOKEN_LENGTH", "ROLES", "Principal", "TokenStore", "generate_tokens",
           "load_tokens", "parse_tokens_toml"]

Role = Literal["viewer", "operator"]
ROLES: tuple[Role, ...] = ("viewer", "operator")
ENV_VIEWER = "TWIN_API_VIEWER_TOKENS"
ENV_OPERATOR = "TWIN_API_OPERATOR_TOKENS"
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class Principal:
    """Who a token belongs to: a name (recorded as the decider) and a role."""

    name: str
    role: Role

    def may(self, role: Role) -> bool:
        """Whether this principal holds ``role`` (an operator is also a viewer)."""
        return ROLES.index(self.role) >= ROLES.index(role)


class TokenStore:
    """Known tokens and whose they are; ``lookup`` compares in constant time."""

    def __init__(self, principals: Sequence[Principal], tokens: Sequence[str]) -> None:
        if len(principals) != len(tokens):
            raise ValueError("one principal per token")
        self._entries = [(t.encode(), p) for t, p in zip(tokens, principals, strict=True)]

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        who = ", ".join(f"{p.name} ({p.role})" for _, p in self._entries)
        return f"TokenStore({len(self._entries)} tokens: {who})"

    def lookup(self, token: str) -> Principal | None:
        """The principal of ``token``, or None. Every known token is compared, whatever matches."""
        presented = token.encode()
        found: Principal | None = None
        for known, principal in self._entries:
            if hmac.compare_digest(presented, known) and found is None:
                found = principal
        return found


def _check_token(token: object, where: str) -> str:
    if not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(f"{where}: a token must be a string of at least {MIN_TOKEN_LENGTH} characters")
    if any(c.isspace() for c in token):
        raise ValueError(f"{where}: a token must not contain white space")
    return token


def parse_tokens_toml(text: str, source: str) -> list[tuple[Principal, str]]:
    """The ``[[tokens]]`` of a tokens file; errors name the file, the entry and the field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: not TOML ({exc})") from None
    entries = data.get("tokens")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{source}: no [[tokens]] entries")
    out = []
    for i, entry in enumerate(entries):
        where = f"{source}: tokens[{i}]"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}: not a table")
        unknown = sorted(set(entry) - {"name", "role", "token"})
        if unknown:
            raise ValueError(f"{where}.{unknown[0]}: unknown field (name, role, token)")
        role = entry.get("role")
        if role not in ROLES:
            raise ValueError(f"{where}.role: {role!r} is not a role ({', '.join(ROLES)})")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{where}.name: a non-empty string is needed")
        out.append((Principal(name, role), _check_token(entry.get("token"), f"{where}.token")))
    return out


def load_tokens(path: Path | None = None, environ: Mapping[str, str] | None = None) -> TokenStore:
    """Tokens from ``path`` (TOML) and the environment; at least one is needed."""
    env = os.environ if environ is None else environ
    pairs: list[tuple[Principal, str]] = []
    if path is not None:
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ValueError(f"--tokens {path}: no such file") from None
        pairs += parse_tokens_toml(text, str(path))
    for var, role in ((ENV_VIEWER, "viewer"), (ENV_OPERATOR, "operator")):
        values = [t.strip() for t in env.get(var, "").split(",") if t.strip()]
        for i, token in enumerate(values):
            pairs.append((Principal(f"{role}-env-{i + 1}", role),  # type: ignore[arg-type]
                          _check_token(token, f"{var}[{i}]")))
    if not pairs:
        raise ValueError(f"no API tokens: give --tokens FILE or set {ENV_VIEWER} / {ENV_OPERATOR}")
    tokens = [t for _, t in pairs]
    if len(set(tokens)) != len(tokens):
        raise ValueError("the same token is given twice (each token must name one principal)")
    return TokenStore([p for p, _ in pairs], tokens)


def generate_tokens(path: Path, roles: Iterable[Role] = ROLES) -> dict[Role, str]:
    """Write a tokens file with one fresh random token per role (``twin demo``); returns them."""
    tokens: dict[Role, str] = {role: secrets.token_urlsafe(24) for role in roles}
    lines = []
    for role, token in tokens.items():
        lines += ["[[tokens]]", f'name = "demo-{role}"', f'role = "{role}"', f'token = "{token}"', ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines))
    return tokens
