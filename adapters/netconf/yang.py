"""Validation of NETCONF payloads against the official 3GPP YANG modules with ``yanglint``.

``yanglint`` (libyang 2, Debian ``libyang2-tools``) runs as a subprocess on every payload before it
is sent: ``yanglint -Q -t edit -p <yang_dir> <modules...> payload.xml``. ``-t edit`` parses the
payload as the ``<config>`` content of an ``<edit-config>``: types, ranges, enumerations, key
leaves, namespaces and the augment structure are checked, mandatory leaves are not (a merge edit
carries only the leaves it changes). ``-Q`` hides libyang's warnings (the modules load with
warnings from the must-paths of ``_3gpp-common-trace``); errors fail validation.

What is cached: each module's file path and ``namespace`` statement (looked up and read once per
module) and the verdict per (payload, modules) pair (bounded LRU), so a repeated payload costs no
subprocess. Only the modules of the lists in the payload are loaded (yanglint resolves their
imports through ``-p``); loading them is most of the ~15 ms a run takes.

The YANG directory is never copied: it is read in place, by default from
``<repo>/../shared/specs/3gpp/yang`` (overridden by ``TWIN_3GPP_YANG_DIR`` or the adapter's
``yang_dir`` option).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["YANG_DIR_ENV", "YangValidator", "default_yang_dir"]

YANG_DIR_ENV = "TWIN_3GPP_YANG_DIR"

_NAMESPACE = re.compile(r'^\s*namespace\s+"?([^";\s]+)"?\s*;', re.MULTILINE)


def default_yang_dir() -> Path:
    """``$TWIN_3GPP_YANG_DIR`` when set, else ``<repo>/../shared/specs/3gpp/yang`` (the repo is two
    folders above this package)."""
    env = os.environ.get(YANG_DIR_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "3gpp" / "yang"


@dataclass
class ValidationStats:
    """How many payloads were checked, how many ran yanglint, and the time yanglint took."""

    payloads: int = 0
    runs: int = 0
    run_s: float = 0.0
    run_ms: list[float] = field(default_factory=list)


class YangValidator:
    """Checks XML payloads against YANG modules in ``yang_dir`` with ``yanglint``.

    >>> v = YangValidator(default_yang_dir())
    >>> v.namespace("_3gpp-nr-nrm-nrsectorcarrier")
    'urn:3gpp:sa5:_3gpp-nr-nrm-nrnetwork-nrsectorcarrier'
    >>> ok = (b'<ManagedElement xmlns="urn:3gpp:sa5:_3gpp-common-managed-element"><id>me</id>'
    ...       b'<GNBDUFunction xmlns="urn:3gpp:sa5:_3gpp-nr-nrm-gnbdufunction"><id>1</id>'
    ...       b'<NRSectorCarrier xmlns="urn:3gpp:sa5:_3gpp-nr-nrm-nrnetwork-nrsectorcarrier"><id>1</id>'
    ...       b'<attributes><configuredMaxTxPower>15849</configuredMaxTxPower></attributes>'
    ...       b'</NRSectorCarrier></GNBDUFunction></ManagedElement>')
    >>> mods = ("_3gpp-common-managed-element", "_3gpp-nr-nrm-gnbdufunction", "_3gpp-nr-nrm-nrsectorcarrier")
    >>> v.validate(ok, mods) is None
    True
    >>> print(v.validate(ok.replace(b"15849", b"high"), mods))  # doctest: +ELLIPSIS
    Invalid type int32 value "high". (Data location ".../attributes/configuredMaxTxPower", line number 1.)
    """

    def __init__(self, yang_dir: str | os.PathLike[str], yanglint: str = "yanglint", cache_size: int = 512,
                 timeout_s: float = 20.0) -> None:
        self.yang_dir = Path(yang_dir)
        if not self.yang_dir.is_dir():
            raise FileNotFoundError(f"YANG directory {self.yang_dir} does not exist (set {YANG_DIR_ENV} or yang_dir)")
        found = shutil.which(yanglint)
        if found is None:
            raise FileNotFoundError(f"{yanglint!r} not found on PATH (Debian package libyang2-tools)")
        self.yanglint = found
        self.cache_size = cache_size
        self.timeout_s = timeout_s
        self.stats = ValidationStats()
        self._namespaces: dict[str, str] = {}
        self._files: dict[str, Path] = {}
        self._verdicts: OrderedDict[tuple[bytes, tuple[str, ...]], str | None] = OrderedDict()

    def module_file(self, module: str) -> Path:
        """The file of ``module`` (``FileNotFoundError`` when the directory lacks it)."""
        path = self._files.get(module)
        if path is None:
            path = self.yang_dir / f"{module}.yang"
            if not path.is_file():
                raise FileNotFoundError(f"YANG module {module} not found in {self.yang_dir}")
            self._files[module] = path
        return path

    def namespace(self, module: str) -> str:
        """The ``namespace`` statement of ``module``, read from its file once."""
        ns = self._namespaces.get(module)
        if ns is None:
            match = _NAMESPACE.search(self.module_file(module).read_text(encoding="utf-8"))
            if match is None:
                raise ValueError(f"YANG module {module} has no namespace statement")
            ns = self._namespaces[module] = match.group(1)
        return ns

    def validate(self, payload: bytes, modules: tuple[str, ...]) -> str | None:
        """None when ``payload`` (edit-config content, XML) is valid against ``modules``, else
        yanglint's error message (its ``libyang err`` lines, joined)."""
        self.stats.payloads += 1
        key = (payload, modules)
        if key in self._verdicts:
            self._verdicts.move_to_end(key)
            return self._verdicts[key]
        verdict = self._run(payload, modules)
        self._verdicts[key] = verdict
        if len(self._verdicts) > self.cache_size:
            self._verdicts.popitem(last=False)
        return verdict

    def _run(self, payload: bytes, modules: tuple[str, ...]) -> str | None:
        files = [str(self.module_file(m)) for m in modules]
        with tempfile.NamedTemporaryFile(suffix=".xml", prefix="twin-netconf-") as tmp:
            tmp.write(payload)
            tmp.flush()
            cmd = [self.yanglint, "-Q", "-t", "edit", "-p", str(self.yang_dir), *files, tmp.name]
            start = time.perf_counter()
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout_s, check=False)
            except subprocess.TimeoutExpired:
                return f"yanglint did not finish within {self.timeout_s:g} s"
            finally:
                elapsed = time.perf_counter() - start
                self.stats.runs += 1
                self.stats.run_s += elapsed
                self.stats.run_ms.append(elapsed * 1000.0)
        if proc.returncode == 0:
            return None
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        errors = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("libyang err")]
        if not errors:
            errors = [ln for ln in lines if "warn" not in ln] or [f"yanglint exit status {proc.returncode}"]
        return "; ".join(errors)
