"""``NetconfAdapter``: the ``CmAdapter`` over NETCONF (O-RAN O1) with the 3GPP SA5 YANG models."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from lxml import etree
from ncclient import manager
from ncclient.operations.rpc import RPCError
from ncclient.transport import session as ncclient_session

from adapters.netconf.mapping import (
    DEFAULT_ATTRIBUTE_MAP,
    MODULES,
    AttributeMapping,
    MoPath,
    Target,
    attribute_leaves,
    build_tree,
    decode_value,
    encode_value,
    find_instance,
    format_path,
    parse_dn,
    read_leaf,
    relation_points_at,
    resolve_static,
)
from adapters.netconf.yang import YangValidator, default_yang_dir
from twin.ports import AdapterUnavailable, restore_through
from twin.schemas import ChangeState, CmChangeRequest, CmChangeResult, Transport

__all__ = ["NetconfAdapter"]

NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
_BEAMFORMING_DN = frozenset({"NRSectorCarrier", "CommonBeamformingFunction", "SectorEquipmentFunction"})
"""DN classes whose read includes the tilt of the beamforming rule (the carrier's CommonBeamformingFunction)."""
_BUSY = frozenset({"in-use", "lock-denied", "resource-denied"})
"""rpc-error tags that say "someone else holds it" (FAILED, try later) rather than "invalid" (REJECTED)."""


class _Rejected(Exception):
    """The request cannot be sent as it is (REJECTED, nothing written)."""


class _Unavailable(Exception):
    """The device could not be reached, or the session broke (FAILED / AdapterUnavailable)."""


def _device_message(err: RPCError) -> str:
    """The device's words from an ``rpc-error``: message, else tag and info."""
    parts = [str(p) for p in (getattr(err, "message", None),) if p]
    if not parts:
        tag = getattr(err, "tag", None) or "rpc-error"
        info = getattr(err, "info", None)
        parts = [f"{tag}{': ' + ' '.join(str(info).split()) if info else ''}"]
    return " ".join(" ".join(parts).split())


def _lock_holder(err: RPCError) -> str:
    """The session id a ``lock-denied`` error names (or 'another session')."""
    info = getattr(err, "info", None) or ""
    try:
        node = etree.fromstring(info.encode()) if info.strip().startswith("<") else None
    except etree.XMLSyntaxError:
        node = None
    sid = next((el.text for el in node.iter() if etree.QName(el).localname == "session-id"), None) if node is not None \
        else None
    return f"session {sid}" if sid else "another session"


class NetconfAdapter:
    """``twin.ports.CmAdapter`` for a NETCONF server carrying the 3GPP YANG (O-RAN O1 CM).

    Options (keywords, as ``twin.ports.open_adapter("netconf", **options)`` passes them):
    ``host``, ``port``, ``username``, ``password``; ``yang_dir`` (the official 3GPP modules, read in
    place; default ``$TWIN_3GPP_YANG_DIR`` or ``<repo>/../shared/specs/3gpp/yang``);
    ``attribute_map`` (replaces ``DEFAULT_ATTRIBUTE_MAP``); ``timeout_s`` (connect and per-RPC);
    ``confirm_timeout_s`` (the confirmed commit's rollback window); ``hostkey_verify``;
    ``use_candidate`` (None: use candidate + confirmed-commit when the server advertises both);
    ``du_id`` / ``cbf_id`` (the ids the ``beamforming`` rule fills in); ``yanglint``;
    ``ncclient_tick_s`` (ncclient's send-queue poll interval, process-wide: 0.01 s instead of its
    0.1 s, which otherwise adds up to 0.1 s to every RPC; None leaves ncclient's).

    >>> from twin.ports import CmAdapter
    >>> a = NetconfAdapter(host="127.0.0.1", port=1, username="u", password="p")
    >>> isinstance(a, CmAdapter), a.transport
    (True, <Transport.NETCONF: 'NETCONF'>)
    """

    transport = Transport.NETCONF

    def __init__(self, host: str, port: int = 830, username: str = "", password: str = "",
                 yang_dir: str | os.PathLike[str] | None = None,
                 attribute_map: Mapping[tuple[str, str], AttributeMapping] | None = None, *,
                 timeout_s: float = 10.0, confirm_timeout_s: int = 60, hostkey_verify: bool = False,
                 use_candidate: bool | None = None, du_id: str = "1", cbf_id: str = "1",
                 yanglint: str = "yanglint", ncclient_tick_s: float | None = 0.01) -> None:
        self.host = host
        self.port = int(port)
        self.username = username
        self.password = password
        self.timeout_s = float(timeout_s)
        self.confirm_timeout_s = int(confirm_timeout_s)
        if self.confirm_timeout_s <= 0:
            raise ValueError("confirm_timeout_s must be positive")
        self.hostkey_verify = hostkey_verify
        self.use_candidate = use_candidate
        self.du_id = du_id
        self.cbf_id = cbf_id
        self.attribute_map: dict[tuple[str, str], AttributeMapping] = dict(
            DEFAULT_ATTRIBUTE_MAP if attribute_map is None else attribute_map)
        if ncclient_tick_s is not None:
            # ncclient's session thread polls its send queue between 0.1 s selects (TICK): every RPC
            # then waits up to 0.1 s before it is written. Process-wide; None leaves ncclient as it is.
            ncclient_session.TICK = ncclient_tick_s
        self.validator = YangValidator(Path(yang_dir) if yang_dir is not None else default_yang_dir(), yanglint)
        self.last_payload: bytes | None = None
        """The last payload validated (the ``<config>`` content of the edit-config), for inspection."""
        self._results: dict[str, CmChangeResult] = {}
        self._unsettled: dict[str, float] = {}  # DN -> monotonic time its pending confirmed commit has ended by
        self._mgr: Any = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ session

    def __enter__(self) -> NetconfAdapter:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the NETCONF session (a confirmed commit still pending is rolled back by the device)."""
        with self._lock:
            mgr, self._mgr = self._mgr, None
            if mgr is None:
                return
            try:
                if mgr.connected:
                    mgr.close_session()
            except Exception:  # closing a broken session: drop the transport below
                pass
            self._drop_transport(mgr)

    @staticmethod
    def _drop_transport(mgr: Any) -> None:
        with contextlib.suppress(Exception):  # already gone
            mgr._session.close()

    def _abandon(self) -> None:
        """Drop the session without a close-session (it may hang): the device ends it, releases the
        locks and rolls back a confirmed commit that was not confirmed."""
        mgr, self._mgr = self._mgr, None
        if mgr is not None:
            self._drop_transport(mgr)

    def _manager(self) -> Any:
        if self._mgr is not None and self._mgr.connected:
            return self._mgr
        self._abandon()
        try:
            self._mgr = manager.connect(
                host=self.host, port=self.port, username=self.username, password=self.password,
                hostkey_verify=self.hostkey_verify, allow_agent=False, look_for_keys=False,
                timeout=self.timeout_s, manager_params={"timeout": self.timeout_s})
        except Exception as exc:
            raise _Unavailable(f"cannot connect to NETCONF server {self.host}:{self.port}: "
                               f"{type(exc).__name__}: {exc}") from exc
        return self._mgr

    def _candidate(self, mgr: Any) -> bool:
        caps = mgr.server_capabilities
        has = ":candidate" in caps and ":confirmed-commit" in caps
        return has if self.use_candidate is None else (self.use_candidate and has)

    # ------------------------------------------------------------------ reads

    def _ns(self, module: str) -> str:
        return self.validator.namespace(module)

    def _get_config(self, mgr: Any, paths: list[MoPath], source: str = "running") -> etree._Element:
        """``get-config`` of ``source`` with a subtree filter selecting the instances ``paths``."""
        flt = build_tree(((p, None, None) for p in paths), self._ns)
        try:
            reply = mgr.get_config(source=source, filter=("subtree", flt))
        except RPCError as exc:
            raise _Unavailable(f"get-config refused by the device: {_device_message(exc)}") from exc
        except Exception as exc:
            self._abandon()
            raise _Unavailable(f"get-config failed: {type(exc).__name__}: {exc}") from exc
        data = reply.data_ele
        if data is None:
            raise _Unavailable("get-config reply holds no <data>")
        return data

    def _values(self, mgr: Any, targets: list[Target], source: str = "running") -> list[Any]:
        """The twin values of ``targets`` on the device (``KeyError`` naming a missing instance)."""
        data = self._get_config(mgr, [t.path for t in targets], source)
        out = []
        for t in targets:
            inst = find_instance(data, t.path, self._ns)
            if inst is None:
                raise KeyError(f"no managed object {format_path(t.path)} on the device")
            out.append(decode_value(read_leaf(inst, t.path[-1][0], t.mapping.leaf, self._ns), t.mapping))
        return out

    def _inbound_relations(self, mgr: Any, cell: MoPath, mapping: AttributeMapping) -> list[Target]:
        me = cell[:1]
        ns_cu = self._ns(MODULES["GNBCUCPFunction"])
        ns_cell = self._ns(MODULES["NRCellCU"])
        ns_rel = self._ns(MODULES["NRCellRelation"])
        data = self._get_config(mgr, [me])
        root = find_instance(data, me, self._ns)
        if root is None:
            raise KeyError(f"no managed object {format_path(me)} on the device")
        targets = []
        for cu in root.iterchildren(f"{{{ns_cu}}}GNBCUCPFunction"):
            for cellcu in cu.iterchildren(f"{{{ns_cell}}}NRCellCU"):
                for rel in cellcu.iterchildren(f"{{{ns_rel}}}NRCellRelation"):
                    ref = read_leaf(rel, "NRCellRelation", ("adjacentNRCellRef",), self._ns)
                    if ref is not None and relation_points_at(ref, cell):
                        path = (*me, ("GNBCUCPFunction", cu.findtext(f"{{{ns_cu}}}id") or ""),
                                ("NRCellCU", cellcu.findtext(f"{{{ns_cell}}}id") or ""),
                                ("NRCellRelation", rel.findtext(f"{{{ns_rel}}}id") or ""))
                        targets.append(Target(path, mapping))
        if not targets:
            raise KeyError(f"no NRCellRelation on {format_path(me)} points at {format_path(cell)}")
        return targets

    def _targets(self, mgr_or_none: Any, dn: str, mapping: AttributeMapping) -> list[Target]:
        """The YANG leaf instances the twin attribute of ``dn`` is (``ValueError``: DN unfit for the rule)."""
        path = parse_dn(dn)
        if mapping.rule == "inbound-relations":
            if path[-1][0] not in ("NRCellDU", "NRCellCU"):
                raise ValueError(f"DN {dn!r} is not an NRCellDU or NRCellCU")
            return self._inbound_relations(mgr_or_none or self._manager(), path, mapping)
        return [Target(resolve_static(mapping, path, self.du_id, self.cbf_id), mapping)]

    def read(self, dn: str) -> dict[str, Any]:
        """Running attributes of the instance ``dn``: the YANG leaves of its ``attributes`` (when it
        is a YANG instance) and every mapped twin attribute of its class (for an NRSectorCarrier
        also its beamforming tilt), in the twin's units (a
        per-cell CIO whose relations disagree reads as ``{relation DN: value}``). ``KeyError`` when
        there is no such instance, ``AdapterUnavailable`` when the device cannot be reached."""
        with self._lock:
            pending = self._pending(dn)
            if pending is not None:
                raise AdapterUnavailable(pending)
            try:
                return self._read(dn)
            except _Unavailable as exc:
                raise AdapterUnavailable(str(exc)) from exc

    def _pending(self, dn: str) -> str | None:
        """Why ``dn``'s value is not settled: a confirmed commit this adapter issued and could not
        confirm (the session broke, the confirming commit was refused, a cancel was not available)
        holds the new value in running until the device rolls it back, at the latest when its
        confirm-timeout ends. Read then, it looks applied and reverts later: a reader would record a
        change the device does not keep. None once the timeout (and the client's) has passed."""
        until = self._unsettled.get(dn)
        if until is None:
            return None
        left = until - time.monotonic()
        if left <= 0:
            del self._unsettled[dn]
            return None
        return (f"{dn}: a confirmed commit this adapter could not confirm may still be pending on the device, "
                f"which rolls it back within its confirm-timeout of {self.confirm_timeout_s} s: the value is "
                f"not settled for another {left:.0f} s")

    def _left_pending(self, request: CmChangeRequest) -> None:
        """``request``'s confirmed commit may stay pending on the device until its timeout."""
        self._unsettled[request.target_dn] = time.monotonic() + self.confirm_timeout_s + self.timeout_s

    def _read(self, dn: str) -> dict[str, Any]:
        try:
            path = parse_dn(dn)
        except ValueError as exc:
            raise KeyError(str(exc)) from exc
        cls = path[-1][0]
        mgr = self._manager()
        out: dict[str, Any] = {}
        found = False
        if cls in MODULES:
            try:
                inst = find_instance(self._get_config(mgr, [path]), path, self._ns)
            except ValueError:  # not a containment the YANG knows
                inst = None
            if inst is not None:
                found = True
                out.update(attribute_leaves(inst))
        for (twin_cls, attr), mapping in self.attribute_map.items():
            if twin_cls != cls and not (mapping.rule == "beamforming" and cls in _BEAMFORMING_DN):
                continue
            try:
                targets = self._targets(mgr, dn, mapping)
                values = self._values(mgr, targets)
            except (KeyError, ValueError):
                continue
            found = True
            distinct = set(values)
            out[attr] = values[0] if len(distinct) == 1 else {format_path(t.path): v for t, v in zip(targets, values,
                                                                                                        strict=True)}
        if not found:
            raise KeyError(f"no managed object {dn!r} on the device")
        return out

    # ------------------------------------------------------------------ results

    def _rpc_error(self, request: CmChangeRequest, name: str, stage: str, exc: RPCError,
                   nothing: str) -> CmChangeResult:
        """A device's rpc-error on a write: FAILED when it is busy (lock, in use: try later), else
        REJECTED with the device's message; ``nothing`` says what was left unchanged."""
        if getattr(exc, "tag", None) in _BUSY:
            return self._result(request, ChangeState.FAILED,
                                error=f"{name}: {stage}: the device is busy: {_device_message(exc)}; {nothing}")
        return self._result(request, ChangeState.REJECTED,
                            error=f"{name}: device rejected the change: {_device_message(exc)}",
                            device_response=f"rpc-error: {getattr(exc, 'tag', None) or 'error'}")

    def _result(self, request: CmChangeRequest, state: ChangeState, **kw: Any) -> CmChangeResult:
        return CmChangeResult(change_id=request.change_id, cell_key=request.cell_key, state=state,
                              transport=Transport.NETCONF, **kw)

    def _name(self, request: CmChangeRequest) -> str:
        return f"{request.class_}.{request.attribute}={request.to!r}"

    # ------------------------------------------------------------------ apply

    def apply(self, request: CmChangeRequest) -> CmChangeResult:
        """Validate the payload with yanglint, then write ``request.to`` (candidate + confirmed
        commit where the server has them, else running). At most once per ``change_id``: APPLIED
        and REJECTED results are remembered; a request not remembered (e.g. after a restart) reads
        the device first and returns APPLIED without writing when the device already holds ``to``.
        FAILED (transport) and ACCEPTED (dry run) are not remembered: a retry reads first again."""
        with self._lock:
            done = self._results.get(request.change_id)
            if done is not None:
                return done
            pending = self._pending(request.target_dn)
            if pending is not None:  # the device's value would look applied: nothing is written now
                return self._result(request, ChangeState.FAILED, error=f"{pending}; nothing written")
            try:
                result = self._apply(request)
            except _Unavailable as exc:
                result = self._result(request, ChangeState.FAILED, error=str(exc))
            except Exception as exc:  # never raise into the caller's loop
                self._abandon()
                result = self._result(request, ChangeState.FAILED, error=f"{type(exc).__name__}: {exc}")
            if result.state in (ChangeState.APPLIED, ChangeState.REJECTED):
                self._results[request.change_id] = result
            return result

    def _apply(self, request: CmChangeRequest) -> CmChangeResult:
        name = self._name(request)
        mapping = self.attribute_map.get((request.class_, request.attribute))
        if mapping is None:
            known = ", ".join(f"{c}.{a}" for c, a in self.attribute_map)
            return self._result(request, ChangeState.REJECTED,
                                error=f"{name}: attribute {request.class_}.{request.attribute} is not in the NETCONF "
                                      f"adapter's attribute map (mapped: {known}); nothing sent")
        mgr = self._manager() if mapping.rule == "inbound-relations" else None
        try:
            targets = self._targets(mgr, request.target_dn, mapping)
        except (ValueError, KeyError) as exc:
            return self._result(request, ChangeState.REJECTED, error=f"{name}: {str(exc).strip(chr(39))}; nothing sent")
        text = encode_value(request.to, mapping)
        try:
            payload = etree.tostring(build_tree(((t.path, t.mapping.leaf, text) for t in targets), self._ns))
        except ValueError as exc:
            return self._result(request, ChangeState.REJECTED, error=f"{name}: {exc}; nothing sent")
        modules = tuple(sorted({MODULES[cls] for t in targets for cls, _ in t.path}))
        self.last_payload = payload
        problem = self.validator.validate(payload, modules)
        if problem is not None:
            return self._result(request, ChangeState.REJECTED,
                                error=f"{name} ({mapping.yang_name}={text}) rejected by yanglint against the 3GPP "
                                      f"YANG: {problem}; nothing sent")
        if request.dry_run:
            return self._result(request, ChangeState.ACCEPTED,
                                device_response="dry run: payload valid against the 3GPP YANG; nothing sent")
        mgr = self._manager()
        try:
            before = self._values(mgr, targets)
        except KeyError as exc:
            return self._result(request, ChangeState.REJECTED, error=f"{name}: {str(exc).strip(chr(39))}; nothing sent")
        if all(v == self._expected(request, mapping) for v in before):
            return self._result(request, ChangeState.APPLIED, applied_at=datetime.now(UTC), observed_value=before[0],
                                device_response="device already holds the value; nothing written")
        config = etree.Element(f"{{{NC_NS}}}config", nsmap={None: NC_NS})
        config.append(etree.fromstring(payload))
        if self._candidate(mgr):
            return self._write_candidate(mgr, request, targets, config)
        return self._write_running(mgr, request, targets, config)

    @staticmethod
    def _expected(request: CmChangeRequest, mapping: AttributeMapping) -> Any:
        """``request.to`` as the device will read it back (``3.0`` dB reads ``3``)."""
        return decode_value(encode_value(request.to, mapping), mapping)

    def _readback(self, mgr: Any, request: CmChangeRequest, targets: list[Target]) -> tuple[bool, Any]:
        values = self._values(mgr, targets)
        observed = values[0] if len(set(values)) == 1 else values
        return all(v == self._expected(request, t.mapping) for v, t in zip(values, targets, strict=True)), observed

    def _write_candidate(self, mgr: Any, request: CmChangeRequest, targets: list[Target],
                         config: etree._Element) -> CmChangeResult:
        name = self._name(request)
        stage = "lock candidate"
        committed = False
        locked = False
        try:
            try:
                mgr.lock(target="candidate")
            except RPCError as exc:
                if getattr(exc, "tag", None) == "lock-denied":
                    return self._result(request, ChangeState.FAILED,
                                        error=f"{name}: candidate datastore is locked by {_lock_holder(exc)}; "
                                              "nothing written")
                return self._result(request, ChangeState.FAILED,
                                    error=f"{name}: lock candidate refused: {_device_message(exc)}; nothing written")
            locked = True
            stage = "discard-changes"
            mgr.discard_changes()
            stage = "edit-config"
            try:
                mgr.edit_config(config=config, target="candidate", default_operation="merge")
                if ":validate" in mgr.server_capabilities:
                    stage = "validate"
                    mgr.validate(source="candidate")
                stage = "commit confirmed"
                mgr.commit(confirmed=True, timeout=str(self.confirm_timeout_s))
            except RPCError as exc:
                failed_at = stage
                stage = "discard-changes after rpc-error"
                mgr.discard_changes()
                return self._rpc_error(request, name, failed_at, exc, "nothing committed")
            committed = True
            stage = "read-back"
            ok, observed = self._readback(mgr, request, targets)
            if not ok:
                stage = "cancel-commit"
                how = self._cancel(mgr)
                if not how.startswith("cancel-commit: "):
                    self._left_pending(request)
                return self._result(request, ChangeState.FAILED, observed_value=observed,
                                    error=f"{name}: read-back after the confirmed commit gave {observed!r}; "
                                          f"not confirmed ({how})")
            stage = "confirming commit"
            try:
                mgr.commit()
            except RPCError as exc:
                self._left_pending(request)
                return self._result(request, ChangeState.FAILED,
                                    error=f"{name}: confirming commit refused: {_device_message(exc)}; the device "
                                          f"rolls back within {self.confirm_timeout_s} s")
            committed = False
            return self._result(request, ChangeState.APPLIED, applied_at=datetime.now(UTC), observed_value=observed,
                                device_response=f"candidate: edit-config, commit confirmed "
                                                f"(confirm-timeout {self.confirm_timeout_s} s), read-back, "
                                                "confirming commit")
        except Exception as exc:  # transport broke, timeout, or the instance vanished
            self._abandon()
            locked = False
            after = (f"; the confirmed commit was not confirmed: the device rolls it back when the session ends or "
                     f"within {self.confirm_timeout_s} s") if committed else "; nothing committed"
            if committed:
                self._left_pending(request)
            detail = str(exc) if isinstance(exc, _Unavailable) else f"{type(exc).__name__}: {exc}"
            return self._result(request, ChangeState.FAILED, error=f"{name}: {stage} failed: {detail}{after}")
        finally:
            if locked:
                try:
                    mgr.unlock(target="candidate")
                except Exception:  # the session ends the lock anyway
                    self._abandon()

    def _cancel(self, mgr: Any) -> str:
        if ":confirmed-commit:1.1" in mgr.server_capabilities:
            try:
                mgr.cancel_commit()
                return "cancel-commit: the device rolled back"
            except RPCError as exc:
                return f"cancel-commit refused ({_device_message(exc)}): the device rolls back within " \
                       f"{self.confirm_timeout_s} s"
        mgr.discard_changes()
        return f"the device rolls back within {self.confirm_timeout_s} s"

    def _write_running(self, mgr: Any, request: CmChangeRequest, targets: list[Target],
                       config: etree._Element) -> CmChangeResult:
        name = self._name(request)
        stage = "lock running"
        locked = False
        try:
            try:
                mgr.lock(target="running")
            except RPCError as exc:
                holder = _lock_holder(exc) if getattr(exc, "tag", None) == "lock-denied" else _device_message(exc)
                return self._result(request, ChangeState.FAILED,
                                    error=f"{name}: running datastore is locked by {holder}; nothing written")
            locked = True
            stage = "edit-config"
            try:
                mgr.edit_config(config=config, target="running", default_operation="merge")
            except RPCError as exc:
                return self._rpc_error(request, name, "edit-config", exc, "nothing written")
            stage = "read-back"
            ok, observed = self._readback(mgr, request, targets)
            if not ok:
                return self._result(request, ChangeState.FAILED, observed_value=observed,
                                    error=f"{name}: read-back after edit-config on running gave {observed!r}")
            return self._result(request, ChangeState.APPLIED, applied_at=datetime.now(UTC), observed_value=observed,
                                device_response="running: edit-config (no candidate/confirmed-commit), read-back")
        except Exception as exc:
            self._abandon()
            locked = False
            detail = str(exc) if isinstance(exc, _Unavailable) else f"{type(exc).__name__}: {exc}"
            return self._result(request, ChangeState.FAILED,
                                error=f"{name}: {stage} failed: {detail}; the running value is unknown (no "
                                      "confirmed commit to roll it back): read it")
        finally:
            if locked:
                try:
                    mgr.unlock(target="running")
                except Exception:
                    self._abandon()

    # ------------------------------------------------------------------ verify / restore

    def verify(self, request: CmChangeRequest) -> CmChangeResult:
        """Read the attribute back: APPLIED with ``observed_value`` when it equals ``request.to``,
        FAILED naming both values when it does not or when the read failed."""
        with self._lock:
            name = f"{request.class_}.{request.attribute}"
            try:
                mapping = self.attribute_map.get((request.class_, request.attribute))
                if mapping is None:
                    raise KeyError(f"{name} is not in the attribute map")
                targets = self._targets(None, request.target_dn, mapping)
                ok, observed = self._readback(self._manager(), request, targets)
            except (_Unavailable, KeyError, ValueError) as exc:
                return self._result(request, ChangeState.FAILED, error=f"read-back of {name} failed: {exc}")
            except Exception as exc:
                self._abandon()
                return self._result(request, ChangeState.FAILED,
                                    error=f"read-back of {name} failed: {type(exc).__name__}: {exc}")
            if not ok:
                return self._result(request, ChangeState.FAILED, observed_value=observed,
                                    error=f"read-back {name}={observed!r}, expected {request.to!r}")
            return self._result(request, ChangeState.APPLIED, observed_value=observed)

    def restore(self, request: CmChangeRequest) -> CmChangeResult:
        """Put ``request.from_`` back: ``apply(rollback_of(request))`` (at most once: the derived
        change id is remembered like any other); ROLLED_BACK with the read-back value."""
        return restore_through(self.apply, request, self.transport)

    def validation_ms(self) -> list[float]:
        """Wall time of each yanglint run so far, ms (cache hits excluded)."""
        return list(self.validator.stats.run_ms)
