"""``ProvMnsAdapter``: the ``CmAdapter`` over 3GPP ProvMnS REST (TS 28.532, TS 32.158 design rules).

One change is one MOI attribute: the adapter reads the MOI first (so a retried change id whose
value the device already holds is not written twice, even after the adapter restarted), PATCHes it
with ``application/merge-patch+json`` or ``application/json-patch+json`` (``test`` on the ``from``
value, then ``replace``: the device refuses atomically when another system moved the value), and
reads it back. HTTP 4xx means the device refused and nothing changed (REJECTED); 5xx, timeouts and
broken connections leave the value unknown (FAILED). Nothing raises out of apply/verify/restore.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from adapters.provmns.mapping import DEFAULT_ATTRIBUTE_MAP, NOT_MAPPED, AttributeMapping, parse_dn, uri_path
from twin.ports import AdapterUnavailable
from twin.schemas import ChangeState, CmChangeRequest, CmChangeResult, Transport, rollback_of

__all__ = ["JSON_PATCH", "MERGE_PATCH", "PatchFormat", "ProvMnsAdapter"]

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
PatchFormat = Literal["merge", "json-patch"]
PRECONDITION_STATUS = frozenset({409, 412})
"""What a ProvMnS server answers when a JSON Patch ``test`` op fails (RFC 5789: 409 Conflict; some 412)."""


class _Unreachable(Exception):
    """The transport broke or the server failed (5xx): the device's value is unknown."""


class _Refused(Exception):
    """The server answered 4xx: it refused, nothing changed."""

    def __init__(self, status: int, summary: str) -> None:
        super().__init__(f"HTTP {status}: {summary}")
        self.status = status
        self.summary = summary


def _error_summary(resp: httpx.Response) -> str:
    """The ``error.errorInfo`` of a TS 28.623 ``ErrorResponse`` body, else the start of the body."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200] or resp.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        info = body["error"].get("errorInfo")
        if info:
            return str(info)[:300]
    return str(body)[:200]


def _integer(value: Any) -> int | None:
    """``value`` as an int when it is one (``15849.0`` from JSON counts; ``True`` does not), else None.

    >>> _integer(15849.0), _integer(2), _integer(1.5), _integer(True), _integer("3")
    (15849, 2, None, None, None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


class ProvMnsAdapter:
    """``twin.ports.CmAdapter`` for a ProvMnS server (``open_adapter("provmns", base_url=...)``).

    ``base_url`` is the MnS root (``http://oss.example:8080/3GPPManagement``); resources live under
    ``{base_url}/ProvMnS/{api_version}/``. ``attribute_map`` replaces ``DEFAULT_ATTRIBUTE_MAP``;
    ``client`` is an ``httpx.Client`` of the caller's (left open by ``close``).

    >>> from twin.ports import CmAdapter
    >>> a = ProvMnsAdapter("http://127.0.0.1:9", token="s3cret")
    >>> isinstance(a, CmAdapter), a.url_of("ManagedElement=1,NRSectorCarrier=2")
    (True, 'http://127.0.0.1:9/ProvMnS/v1800/ManagedElement=1/NRSectorCarrier=2')
    >>> "s3cret" in repr(a)
    False
    >>> a.close()
    """

    transport = Transport.PROVMNS

    def __init__(self, base_url: str, api_version: str = "v1800", token: str | None = None,
                 attribute_map: Mapping[str, AttributeMapping] | None = None, timeout_s: float = 5.0,
                 patch_format: PatchFormat = "merge", client: httpx.Client | None = None) -> None:
        if patch_format not in ("merge", "json-patch"):
            raise ValueError(f"patch_format must be 'merge' or 'json-patch', not {patch_format!r}")
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self.attribute_map: Mapping[str, AttributeMapping] = dict(
            DEFAULT_ATTRIBUTE_MAP if attribute_map is None else attribute_map)
        self.timeout_s = timeout_s
        self.patch_format: PatchFormat = patch_format
        self._token = token
        self._own_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=httpx.Timeout(timeout_s))
        self._applied: dict[str, CmChangeResult] = {}
        self._restored: dict[str, CmChangeResult] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        auth = "bearer token" if self._token else "no token"
        return f"ProvMnsAdapter({self.base_url!r}, {self.api_version!r}, {self.patch_format}, {auth})"

    def close(self) -> None:
        """Close the HTTP client (only one the adapter made itself)."""
        if self._own_client:
            self._client.close()

    def __enter__(self) -> ProvMnsAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP ----------------------------------------------------------------------------------

    def url_of(self, dn: str) -> str:
        """The resource URI of the MOI ``dn`` (TS 32.158: one path segment per RDN)."""
        return f"{self.base_url}/ProvMnS/{self.api_version}/{uri_path(dn)}"

    def _send(self, method: str, dn: str, *, params: dict[str, str] | None = None, body: Any = None,
              content_type: str | None = None) -> httpx.Response:
        """One request; ``_Unreachable`` for a transport failure or 5xx, ``_Refused`` for 4xx."""
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        url = self.url_of(dn)
        started = time.perf_counter()
        try:
            resp = self._client.request(method, url, params=params, json=body, headers=headers,
                                        timeout=self.timeout_s)
        except httpx.TimeoutException as exc:
            log.warning("provmns %s %s: timeout after %.1f s", method, url, self.timeout_s)
            raise _Unreachable(f"{method} {url}: timed out after {self.timeout_s} s ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            log.warning("provmns %s %s: %s", method, url, type(exc).__name__)
            raise _Unreachable(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
        log.debug("provmns %s %s -> %d in %.1f ms", method, url, resp.status_code,
                  1e3 * (time.perf_counter() - started))
        if resp.status_code >= 500:
            raise _Unreachable(f"{method} {url}: HTTP {resp.status_code}: {_error_summary(resp)}")
        if resp.status_code >= 400:
            raise _Refused(resp.status_code, _error_summary(resp))
        return resp

    def _get_attributes(self, dn: str, names: list[str] | None = None) -> dict[str, Any]:
        """The ``attributes`` of the MOI ``dn`` (only ``names`` when given): the base resource only."""
        params = {"scopeType": "BASE_ONLY"}
        if names:
            params["attributes"] = ",".join(names)
        resp = self._send("GET", dn, params=params)
        try:
            body = resp.json()
        except ValueError as exc:
            raise _Unreachable(f"GET {self.url_of(dn)}: response is not JSON") from exc
        attributes = body.get("attributes", {}) if isinstance(body, dict) else None
        if not isinstance(attributes, dict):
            raise _Unreachable(f"GET {self.url_of(dn)}: response has no attributes object")
        return attributes

    # -- the CmAdapter protocol ---------------------------------------------------------------

    def read(self, dn: str) -> dict[str, Any]:
        """The MOI's attributes with the twin's names and units (``KeyError`` when it does not exist).

        A twin DN whose class the attribute map moves (``SectorEquipmentFunction=2``) reads the MOI
        the map names (``...NRSectorCarrier=2,CommonBeamformingFunction=1``).
        """
        try:
            twin_class = parse_dn(dn)[-1][0]
        except ValueError as exc:
            raise KeyError(dn) from exc
        mappings = {key.split(".", 1)[1]: m for key, m in self.attribute_map.items()
                    if key.split(".", 1)[0] == twin_class}
        moved = next((m for m in mappings.values() if m.moi is not None), None)
        target = moved.target_dn(dn) if moved else dn
        try:
            attributes = self._get_attributes(target)
        except _Refused as exc:
            if exc.status == 404:
                raise KeyError(dn) from None
            raise AdapterUnavailable(f"ProvMnS read of {target}: {exc}") from None
        except _Unreachable as exc:
            raise AdapterUnavailable(f"ProvMnS read of {target}: {exc}") from None
        out = dict(attributes)
        for name, m in mappings.items():
            if m.target_dn(dn) != target:
                continue
            try:
                value = m.get(attributes)
            except KeyError:
                continue
            out.pop(m.path[0], None)
            out[name] = m.to_twin(value)
        return out

    def apply(self, request: CmChangeRequest) -> CmChangeResult:
        """Write ``request.to`` at most once per change id (see the module docstring)."""
        with self._lock:
            done = self._applied.get(request.change_id)
        if done is not None:
            return done
        result = self._guarded(request, check_from=True)
        if result.state != ChangeState.FAILED:  # FAILED: value unknown; a retry reads first, writes at most once
            with self._lock:
                result = self._applied.setdefault(request.change_id, result)
        return result

    def verify(self, request: CmChangeRequest) -> CmChangeResult:
        """Read the attribute back: APPLIED when it equals ``request.to``, FAILED naming both values."""
        name = f"{request.class_}.{request.attribute}"
        mapping = self.attribute_map.get(name)
        if mapping is None:
            return self._result(request, ChangeState.FAILED, error=f"read-back of {name}: no ProvMnS mapping")
        try:
            value = self._read_value(request, mapping)
        except Exception as exc:  # _Unreachable, _Refused, KeyError, or anything unforeseen: never raise
            return self._result(request, ChangeState.FAILED, error=f"read-back of {name} failed: {exc}")
        if value != request.to:
            return self._result(request, ChangeState.FAILED, observed_value=value,
                                error=f"read-back {name}={value!r}, expected {request.to!r}")
        return self._result(request, ChangeState.APPLIED, observed_value=value)

    def restore(self, request: CmChangeRequest) -> CmChangeResult:
        """Put ``request.from_`` back, at most once (keyed by ``rollback_of(request).change_id``).

        No ``test`` on the forward value: a roll back must also undo a change that only partly
        took effect (the device then holds neither ``from`` nor ``to``).
        """
        try:
            back = rollback_of(request)
        except ValueError as exc:
            return self._result(request, ChangeState.REJECTED, error=str(exc))
        with self._lock:
            done = self._restored.get(back.change_id)
        if done is not None:
            return done
        result = self._guarded(back, check_from=False)
        update: dict[str, Any] = {"change_id": request.change_id}
        if result.state == ChangeState.APPLIED:
            update["state"] = ChangeState.ROLLED_BACK
        result = result.model_copy(update=update)
        if result.state != ChangeState.FAILED:
            with self._lock:
                result = self._restored.setdefault(back.change_id, result)
        return result

    # -- the change itself ----------------------------------------------------------------------

    def _result(self, request: CmChangeRequest, state: ChangeState, **kw: Any) -> CmChangeResult:
        return CmChangeResult(change_id=request.change_id, cell_key=request.cell_key, state=state,
                              transport=Transport.PROVMNS, **kw)

    def _guarded(self, request: CmChangeRequest, *, check_from: bool) -> CmChangeResult:
        """``_change``, with anything unforeseen (a malformed answer, a bug) as FAILED instead of raised."""
        try:
            return self._change(request, check_from=check_from)
        except Exception as exc:
            log.exception("provmns change %s", request.change_id)
            return self._result(request, ChangeState.FAILED, error=f"{type(exc).__name__}: {exc} (value unknown)")

    def _read_value(self, request: CmChangeRequest, mapping: AttributeMapping) -> Any:
        """The attribute's current value in the twin's units (``KeyError`` when absent)."""
        attributes = self._get_attributes(mapping.target_dn(request.target_dn), [mapping.path[0]])
        return mapping.to_twin(mapping.get(attributes))

    def _invalid(self, request: CmChangeRequest) -> tuple[AttributeMapping | None, str | None]:
        """The mapping of the request, or the reason it cannot be sent (nothing is written then)."""
        name = f"{request.class_}.{request.attribute}"
        what = f"{name}={request.to!r}"
        mapping = self.attribute_map.get(name)
        if mapping is None:
            why = NOT_MAPPED.get(name, "not in the adapter's attribute map")
            return None, f"{what}: no ProvMnS mapping for {name} ({why})"
        try:
            rdns = parse_dn(request.target_dn)
        except ValueError as exc:
            return None, f"{what}: {exc}"
        if rdns[-1][0] != request.class_:
            return None, f"{what}: target DN {request.target_dn!r} is not a {request.class_}"
        if not mapping.accepts_unit(request.unit):
            return None, f"{what}: unit {request.unit!r} is not the mapping's {mapping.unit!r}"
        for label, value in (("to", request.to), ("from", request.from_)):
            if label == "from" and value is None:
                continue
            if _integer(value) is None:
                return None, f"{what}: {label} value {value!r} is not an integer (the NRM attribute is)"
        return mapping, None

    def _change(self, request: CmChangeRequest, *, check_from: bool) -> CmChangeResult:
        """Read, PATCH, read back. ``check_from``: refuse when the device holds neither from nor to."""
        name = f"{request.class_}.{request.attribute}"
        mapping, reason = self._invalid(request)
        if mapping is None:
            return self._result(request, ChangeState.REJECTED, error=reason)
        target = mapping.target_dn(request.target_dn)
        what = f"{name}={request.to!r} on {target}"
        try:
            current = self._read_value(request, mapping)
        except _Unreachable as exc:
            return self._result(request, ChangeState.FAILED, error=f"{what}: read before write failed: {exc}")
        except _Refused as exc:
            return self._result(request, ChangeState.REJECTED, error=f"{what}: device refused the read: {exc}")
        except KeyError:
            return self._result(request, ChangeState.REJECTED, error=f"{what}: the MOI has no {name}")
        if current == request.to:
            return self._result(request, ChangeState.APPLIED, observed_value=current, applied_at=datetime.now(UTC),
                                device_response=f"device already holds {name}={current!r}: not written again")
        precondition = request.from_ if check_from else None
        if precondition is not None and current != precondition:
            return self._result(request, ChangeState.REJECTED, observed_value=current,
                                error=f"{what}: precondition failed: the device held {current!r}, "
                                      f"not from={precondition!r}")
        if request.dry_run:
            return self._result(request, ChangeState.ACCEPTED, observed_value=current,
                                device_response=f"dry run: {name} would change {current!r} -> {request.to!r}")
        to = _integer(request.to)
        if self.patch_format == "merge":
            body: Any = mapping.merge_patch(mapping.to_mns(to))
            content_type = MERGE_PATCH
        else:
            ops: list[dict[str, Any]] = []
            if precondition is not None:
                ops.append({"op": "test", "path": mapping.pointer(), "value": mapping.to_mns(_integer(precondition))})
            ops.append({"op": "replace", "path": mapping.pointer(), "value": mapping.to_mns(to)})
            body, content_type = ops, JSON_PATCH
        try:
            resp = self._send("PATCH", target, body=body, content_type=content_type)
        except _Unreachable as exc:
            return self._result(request, ChangeState.FAILED, error=f"{what}: value unknown: {exc}")
        except _Refused as exc:
            if exc.status in PRECONDITION_STATUS:
                try:
                    now = f"; it holds {self._read_value(request, mapping)!r} now"
                except (_Unreachable, _Refused, KeyError):
                    now = ""
                return self._result(request, ChangeState.REJECTED, error=(
                    f"{what}: precondition failed: the device held another value than from={precondition!r}"
                    f"{now} ({exc})"))
            return self._result(request, ChangeState.REJECTED, error=f"device refused {what}: {exc}")
        applied_at = datetime.now(UTC)
        device_response = f"PATCH {content_type}: HTTP {resp.status_code}"
        try:
            observed = self._read_value(request, mapping)
        except (_Unreachable, _Refused, KeyError) as exc:
            return self._result(request, ChangeState.APPLIED, applied_at=applied_at,
                                device_response=f"{device_response}; read-back failed: {exc}")
        return self._result(request, ChangeState.APPLIED, applied_at=applied_at, observed_value=observed,
                            device_response=device_response)
