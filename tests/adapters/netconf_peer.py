"""TEST PEER ONLY: a real NETCONF-over-SSH server on 127.0.0.1 for the NETCONF adapter's tests.

Built on C. Hopps' ``netconf`` package (``netconf.server.NetconfSSHServer`` with
``SSHUserPassController``, paramiko 3.5) with datastore logic written here: ``running`` and
``candidate`` hold a small 3GPP tree (ManagedElement / GNBDUFunction / NRSectorCarrier /
CommonBeamformingFunction / NRCellDU and GNBCUCPFunction / NRCellCU / NRCellRelation, a few cells,
in the SA5 modules' namespaces). It serves ``get-config`` with subtree filters, ``edit-config``
(merge / replace / create / delete / remove), ``lock`` / ``unlock``, ``commit``, confirmed commit
with a ``confirm-timeout`` that reverts by itself (and, as RFC 6241 section 8.4 says, when the
session that issued it ends), ``cancel-commit``, ``discard-changes`` and ``validate``.

It is not a device emulator and does no YANG validation (the adapter validates with yanglint).
The one device rule it enforces: ``configuredMaxTxPower`` above ``max_tx_power_mw`` is refused with
an ``rpc-error`` (a value the YANG allows but the radio does not). Switches: ``candidate=False``
starts it without ``:candidate`` / ``:confirmed-commit`` (edit-config on running only);
``revert_on_session_close``; ``fail_next(rpc, mode)`` with ``mode`` ``"drop"`` (close the SSH
connection instead of answering), ``"error"`` (answer an rpc-error) or ``"hang"`` (answer nothing
until ``hang_s`` or ``stop()``); ``hold_lock(target)`` makes another session hold a lock.
"""

from __future__ import annotations

import copy
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import netconf.error as ncerror
import paramiko
import sshutil.server
from lxml import etree
from netconf.server import NetconfServerSession, NetconfSSHServer, SSHUserPassController

__all__ = ["NS", "NetconfPeer", "running_peer"]

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NS = {
    "me": "urn:3gpp:sa5:_3gpp-common-managed-element",
    "du": "urn:3gpp:sa5:_3gpp-nr-nrm-gnbdufunction",
    "sc": "urn:3gpp:sa5:_3gpp-nr-nrm-nrnetwork-nrsectorcarrier",
    "bf": "urn:3gpp:sa5:_3gpp-nr-nrm-nrnetwork-commonbeamformingfunction",
    "celldu": "urn:3gpp:sa5:_3gpp-nr-nrm-nrcelldu",
    "cucp": "urn:3gpp:sa5:_3gpp-nr-nrm-gnbcucpfunction",
    "cellcu": "urn:3gpp:sa5:_3gpp-nr-nrm-nrcellcu",
    "rel": "urn:3gpp:sa5:_3gpp-nr-nrm-nrcellrelation",
}
"""Namespaces as the official modules' ``namespace`` statements spell them (checked against the files)."""

CAP_CANDIDATE = "urn:ietf:params:netconf:capability:candidate:1.0"
CAP_CONFIRMED = "urn:ietf:params:netconf:capability:confirmed-commit:1.1"
CAP_VALIDATE = "urn:ietf:params:netconf:capability:validate:1.1"
CAP_RUNNING = "urn:ietf:params:netconf:capability:writable-running:1.0"

Mode = Literal["drop", "error", "hang"]


def _el(parent: etree._Element | None, ns: str, tag: str, text: Any = None) -> etree._Element:
    node = etree.Element(f"{{{ns}}}{tag}", nsmap={None: ns}) if parent is None else \
        etree.SubElement(parent, f"{{{ns}}}{tag}", nsmap={None: ns} if parent.nsmap.get(None) != ns else None)
    if text is not None:
        node.text = str(text)
    return node


def _entry(parent: etree._Element, key: str, cls: str, ident: Any, attrs: dict[str, Any]) -> etree._Element:
    ns = NS[key]
    node = _el(parent, ns, cls)
    _el(node, ns, "id", ident)
    a = _el(node, ns, "attributes")
    for name, value in attrs.items():
        if isinstance(value, dict):
            c = _el(a, ns, name)
            for k, v in value.items():
                _el(c, ns, k, v)
        else:
            _el(a, ns, name, value)
    return node


def initial_tree(me: str = "gnb-001", cells: int = 3, subnetwork: str = "Emulator") -> etree._Element:
    """``<data>`` with one ManagedElement: ``cells`` sector carriers (20000 mW, tilt 30), NR cells
    and a full mesh of NRCellRelations (CIO 0)."""
    data = etree.Element(f"{{{NC}}}data", nsmap={None: NC})
    root = _el(data, NS["me"], "ManagedElement")
    _el(root, NS["me"], "id", me)
    du = _entry(root, "du", "GNBDUFunction", 1, {"gNBDUId": 1, "gNBId": 1, "gNBIdLength": 28})
    for c in range(1, cells + 1):
        sc = _entry(du, "sc", "NRSectorCarrier", c, {
            "txDirection": "DL_AND_UL", "configuredMaxTxPower": 20000, "configuredMaxTxEIRP": 60,
            "arfcnDL": 632628, "arfcnUL": 632628, "bSChannelBwDL": 20, "bSChannelBwUL": 20,
            "sectorEquipmentFunctionRef": f"SubNetwork={subnetwork},ManagedElement={me},SectorEquipmentFunction={c}"})
        _entry(sc, "bf", "CommonBeamformingFunction", 1, {"coverageShape": 1, "digitalAzimuth": 0, "digitalTilt": 30})
    for c in range(1, cells + 1):
        _entry(du, "celldu", "NRCellDU", c, {"cellLocalId": c, "nRPCI": c, "nRTAC": 1, "arfcnDL": 632628})
    cu = _entry(root, "cucp", "GNBCUCPFunction", 1, {"gNBId": 1, "gNBIdLength": 28})
    for c in range(1, cells + 1):
        cell = _entry(cu, "cellcu", "NRCellCU", c, {"cellLocalId": c})
        for n in range(1, cells + 1):
            if n != c:
                _entry(cell, "rel", "NRCellRelation", n, {
                    "nRTCI": 256 + n,
                    "cellIndividualOffset": {"rsrpOffsetSsb": 0, "rsrqOffsetSsb": 0},
                    "nRFreqRelationRef": f"SubNetwork={subnetwork},ManagedElement={me},GNBCUCPFunction=1,"
                                         f"NRCellCU={c},NRFreqRelation=1",
                    "adjacentNRCellRef": f"SubNetwork={subnetwork},ManagedElement={me},GNBCUCPFunction=1,NRCellCU={n}",
                })
    return data


# ---------------------------------------------------------------------------- subtree filter, merge

def _same_tag(a: etree._Element, f: etree._Element) -> bool:
    fq, aq = etree.QName(f), etree.QName(a)
    return fq.localname == aq.localname and (not fq.namespace or fq.namespace == aq.namespace)


def _is_content(f: etree._Element) -> bool:
    return len(f) == 0 and bool((f.text or "").strip())


def _filter_node(node: etree._Element, f: etree._Element) -> etree._Element | None:
    """RFC 6241 section 6 subtree filtering of one node (content match, selection, containment)."""
    kids = [k for k in f if isinstance(k.tag, str)]
    if not kids:
        return copy.deepcopy(node)
    content = [k for k in kids if _is_content(k)]
    for k in content:
        if not any(_same_tag(c, k) and (c.text or "").strip() == (k.text or "").strip() for c in node):
            return None
    others = [k for k in kids if not _is_content(k)]
    if not others:
        return copy.deepcopy(node)
    out = etree.Element(node.tag, attrib=dict(node.attrib), nsmap=node.nsmap)
    out.text = node.text
    for c in node:
        if any(_same_tag(c, k) for k in content):
            out.append(copy.deepcopy(c))
    matched = False
    for c in node:
        for k in others:
            if _same_tag(c, k):
                sub = _filter_node(c, k)
                if sub is not None:
                    out.append(sub)
                    matched = True
                    break
    return out if matched or content else None


def subtree_filter(data: etree._Element, flt: etree._Element | None) -> etree._Element:
    """A new ``<data>`` with what ``flt`` (a ``<filter type="subtree">``) selects from ``data``."""
    out = etree.Element(f"{{{NC}}}data", nsmap={None: NC})
    if flt is None:
        for c in data:
            out.append(copy.deepcopy(c))
        return out
    for c in data:
        for k in flt:
            if isinstance(k.tag, str) and _same_tag(c, k):
                sub = _filter_node(c, k)
                if sub is not None:
                    out.append(sub)
                    break
    return out


def _key(node: etree._Element) -> str | None:
    ident = next((c for c in node if isinstance(c.tag, str) and etree.QName(c).localname == "id"), None)
    return None if ident is None else (ident.text or "").strip()


def _strip_ops(node: etree._Element) -> etree._Element:
    node = copy.deepcopy(node)
    for n in node.iter():
        n.attrib.pop(f"{{{NC}}}operation", None)
    return node


def merge_edit(target: etree._Element, edit: etree._Element, default_op: str, rpc: etree._Element) -> None:
    """Apply the children of ``edit`` to the children of ``target`` (RFC 6241 section 7.2)."""
    for e in edit:
        if not isinstance(e.tag, str):
            continue
        op = e.get(f"{{{NC}}}operation", default_op)
        key = _key(e)
        match = next((t for t in target if isinstance(t.tag, str) and t.tag == e.tag and _key(t) == key), None)
        if op in ("delete", "remove"):
            if match is None and op == "delete":
                raise ncerror.RPCServerError(rpc, "application", "data-missing", message=f"{e.tag} does not exist")
            if match is not None:
                target.remove(match)
        elif op == "create" and match is not None:
            raise ncerror.RPCServerError(rpc, "application", "data-exists", message=f"{e.tag} exists")
        elif match is None:
            if op != "none":
                target.append(_strip_ops(e))
        elif op == "replace":
            target.replace(match, _strip_ops(e))
        elif len([c for c in e if isinstance(c.tag, str)]) == 0:
            match.text = e.text
        else:
            merge_edit(match, e, "merge" if op == "create" else op, rpc)


# ---------------------------------------------------------------------------- the server

class _PeerSession(NetconfServerSession):
    """A server session that remembers its channel (to drop it) and reports its end to the peer."""

    def __init__(self, channel: Any, server: Any, extra_args: Any, debug: bool) -> None:
        self.channel = channel
        self.sid = 0
        self._ended = False
        super().__init__(channel, server, extra_args, debug)
        self.sid = self.session_id

    def close(self) -> None:
        if not getattr(self, "_ended", True):
            self._ended = True
            self.server.server_methods.session_ended(self.sid)
        super().close()

    def _reader_exits(self) -> None:
        self.close()


class _PeerServer(NetconfSSHServer):
    """``NetconfSSHServer`` listening on 127.0.0.1 only (the library binds every address)."""

    def __init__(self, ctl: Any, methods: Any, host_key: Any) -> None:  # the library binds every address
        self.server_methods = methods
        self.session_id = 1
        self.session_locks_lock = threading.Lock()
        self.session_locks = {"running": 0, "candidate": 0}
        self.server_ctl = ctl
        self.server_socket_class = sshutil.server.SSHServerSocket
        self.server_session_class = _PeerSession
        self.extra_args = None
        self.debug = False
        self.host_key = host_key
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self.ports = {socket.AF_INET: self.port}
        self.close_wsocket, self.close_rsocket = socket.socketpair()
        self.lock = threading.Lock()
        self.sockets: list[Any] = []
        self.thread = threading.Thread(target=self._accept_socket_thread, args=[listener], daemon=True,
                                       name=f"netconf-peer-{self.port}")
        self.thread.start()

    def __del__(self) -> None:  # the library logs an error here
        pass


class _Dropped(Exception):
    """The peer dropped the connection on purpose (no reply)."""


class NetconfPeer:
    """The test NETCONF server and its datastores (see the module docstring).

    >>> with running_peer(candidate=False) as peer:
    ...     peer.leaf("running", "NRSectorCarrier", "2", "configuredMaxTxPower")
    '20000'
    """

    def __init__(self, *, candidate: bool = True, username: str = "twin", password: str = "twin-test",
                 revert_on_session_close: bool = True, max_tx_power_mw: int = 80000, cells: int = 3,
                 hang_s: float = 15.0) -> None:
        self.candidate_enabled = candidate
        self.username = username
        self.password = password
        self.revert_on_session_close = revert_on_session_close
        self.max_tx_power_mw = max_tx_power_mw
        self.cells = cells
        self.hang_s = hang_s
        self.lock = threading.RLock()
        self.running = initial_tree(cells=cells)
        self.candidate = copy.deepcopy(self.running)
        self.rpcs: list[str] = []
        """Names of the RPCs received, in order (``commit-confirmed`` for a confirmed commit)."""
        self.edits: list[etree._Element] = []
        """The ``<config>`` element of every edit-config received (copies)."""
        self.faults: dict[str, tuple[Mode, str]] = {}
        self._pending: tuple[int, etree._Element, threading.Timer] | None = None
        self._stopping = threading.Event()
        self.server: _PeerServer | None = None

    # -- control

    @property
    def port(self) -> int:
        assert self.server is not None, "peer not started"
        return int(self.server.port)

    def options(self) -> dict[str, Any]:
        """Keyword options for ``NetconfAdapter`` / ``open_adapter("netconf", ...)``."""
        return {"host": "127.0.0.1", "port": self.port, "username": self.username, "password": self.password}

    def start(self) -> NetconfPeer:
        key = paramiko.ECDSAKey.generate()
        self.server = _PeerServer(SSHUserPassController(self.username, self.password), self, key)
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self.lock:
            if self._pending is not None:
                self._pending[2].cancel()
                self._pending = None
        if self.server is not None:
            self.server.close()
            self.server.join()
            self.server = None

    def reset(self, *, candidate: bool = True, revert_on_session_close: bool = True) -> None:
        """Back to the initial datastores, no faults, no pending commit, no held locks."""
        with self.lock:
            if self._pending is not None:
                self._pending[2].cancel()
                self._pending = None
            self.running = initial_tree(cells=self.cells)
            self.candidate = copy.deepcopy(self.running)
            self.candidate_enabled = candidate
            self.revert_on_session_close = revert_on_session_close
            self.rpcs.clear()
            self.edits.clear()
            self.faults.clear()
        if self.server is not None:
            with self.server.session_locks_lock:
                self.server.session_locks.update({"running": 0, "candidate": 0})

    def fail_next(self, rpc: str, mode: Mode, message: str = "injected fault") -> None:
        """The next ``rpc`` (``edit-config``, ``commit-confirmed``, ``commit``, ``get-config``, ...) fails."""
        with self.lock:
            self.faults[rpc] = (mode, message)

    def hold_lock(self, target: str, session_id: int = 4242) -> None:
        """Another (phantom) session holds the lock on ``target``."""
        assert self.server is not None
        with self.server.session_locks_lock:
            self.server.session_locks[target] = session_id

    def leaf(self, store: str, cls: str, ident: str, *leaf: str, sector: str | None = None) -> str | None:
        """Text of ``attributes/<leaf...>`` of the first ``cls`` entry ``ident`` in ``store``
        (``sector`` picks the NRSectorCarrier a CommonBeamformingFunction sits in; for an
        NRCellRelation, ``ident`` is ``"cellcu/relation"``)."""
        with self.lock:
            tree = self.running if store == "running" else self.candidate
            nodes = [n for n in tree.iter() if isinstance(n.tag, str) and etree.QName(n).localname == cls]
            if cls == "NRCellRelation":
                cu, rel = ident.split("/")
                nodes = [n for n in nodes if _key(n) == rel and _key(n.getparent()) == cu]
            else:
                nodes = [n for n in nodes if _key(n) == ident]
            if sector is not None:
                nodes = [n for n in nodes if _key(n.getparent()) == sector]
            if not nodes:
                return None
            node: etree._Element | None = nodes[0]
            for name in ("attributes", *leaf):
                node = next((c for c in node if isinstance(c.tag, str) and etree.QName(c).localname == name),
                            None) if node is not None else None
            return None if node is None else node.text

    def pending_commit(self) -> bool:
        with self.lock:
            return self._pending is not None

    # -- netconf.server methods interface

    def nc_append_capabilities(self, caps: etree._Element) -> None:
        names = [CAP_CANDIDATE, CAP_CONFIRMED, CAP_VALIDATE] if self.candidate_enabled else [CAP_RUNNING]
        for name in names:
            etree.SubElement(caps, "capability").text = name

    def _fault(self, session: _PeerSession, rpc: etree._Element, name: str) -> None:
        with self.lock:
            self.rpcs.append(name)
            fault = self.faults.pop(name, None)
        if fault is None:
            return
        mode, message = fault
        if mode == "drop":
            session.channel.get_transport().close()
            raise _Dropped(name)
        if mode == "hang":  # until the client gives up (its transport closes), stop(), or hang_s
            end = time.monotonic() + self.hang_s
            while time.monotonic() < end and session.channel.get_transport().is_active() and not session.channel.closed:
                if self._stopping.wait(0.05):
                    break
            raise _Dropped(name)
        raise ncerror.RPCServerError(rpc, "application", "operation-failed", message=message)

    def _store(self, name: str) -> etree._Element:
        return self.running if name == "running" else self.candidate

    def _check_lock(self, session: _PeerSession, rpc: etree._Element, target: str) -> None:
        holder = session.server.is_target_locked(target)
        if holder and holder != session.session_id:
            raise ncerror.RPCServerError(rpc, "protocol", "in-use", message=f"{target} is locked by session {holder}",
                                         info={"session-id": holder})

    def rpc_get_config(self, session: _PeerSession, rpc: etree._Element, source: etree._Element,
                       flt: etree._Element | None) -> etree._Element:
        self._fault(session, rpc, "get-config")
        name = etree.QName(source[0]).localname
        if name == "candidate" and not self.candidate_enabled:
            raise ncerror.RPCServerError(rpc, "protocol", "invalid-value", message="no candidate datastore")
        with self.lock:
            return subtree_filter(self._store(name), flt)

    def rpc_edit_config(self, session: _PeerSession, rpc: etree._Element, *params: etree._Element) -> etree._Element:
        self._fault(session, rpc, "edit-config")
        by = {etree.QName(p).localname: p for p in params}
        target = etree.QName(by["target"][0]).localname
        if target == "candidate" and not self.candidate_enabled:
            raise ncerror.RPCServerError(rpc, "protocol", "invalid-value", message="no candidate datastore")
        if target == "running" and self.candidate_enabled:
            raise ncerror.RPCServerError(rpc, "protocol", "operation-not-supported",
                                         message="running is not writable: use the candidate")
        self._check_lock(session, rpc, target)
        default_op = (by["default-operation"].text or "merge").strip() if "default-operation" in by else "merge"
        config = by["config"]
        with self.lock:
            self.edits.append(copy.deepcopy(config))
            scratch = copy.deepcopy(self._store(target))
            merge_edit(scratch, config, default_op, rpc)
            for leaf in scratch.iter(f"{{{NS['sc']}}}configuredMaxTxPower"):
                if int(leaf.text or 0) > self.max_tx_power_mw:
                    raise ncerror.RPCServerError(
                        rpc, "application", "invalid-value",
                        message=f"configuredMaxTxPower {leaf.text} mW exceeds the radio's limit of "
                                f"{self.max_tx_power_mw} mW")
            if target == "running":
                self.running = scratch
            else:
                self.candidate = scratch
        return etree.Element("ok")

    def rpc_discard_changes(self, session: _PeerSession, rpc: etree._Element, *params: Any) -> etree._Element:
        self._fault(session, rpc, "discard-changes")
        with self.lock:
            self.candidate = copy.deepcopy(self.running)
        return etree.Element("ok")

    def rpc_validate(self, session: _PeerSession, rpc: etree._Element, *params: Any) -> etree._Element:
        self._fault(session, rpc, "validate")
        return etree.Element("ok")

    def rpc_commit(self, session: _PeerSession, rpc: etree._Element, *params: etree._Element) -> etree._Element:
        by = {etree.QName(p).localname: p for p in params}
        confirmed = "confirmed" in by
        self._fault(session, rpc, "commit-confirmed" if confirmed else "commit")
        if not self.candidate_enabled:
            raise ncerror.OperationNotSupportedProtoError(rpc)
        self._check_lock(session, rpc, "running")
        with self.lock:
            if self._pending is not None and self._pending[0] != session.session_id:
                raise ncerror.RPCServerError(rpc, "protocol", "in-use",
                                             message=f"a confirmed commit of session {self._pending[0]} is pending")
            if confirmed:
                timeout = float((by["confirm-timeout"].text or "600").strip()) if "confirm-timeout" in by else 600.0
                backup = self._pending[1] if self._pending is not None else copy.deepcopy(self.running)
                if self._pending is not None:
                    self._pending[2].cancel()
                timer = threading.Timer(timeout, self._expire, args=[session.session_id])
                timer.daemon = True
                self._pending = (session.session_id, backup, timer)
                timer.start()
            elif self._pending is not None:
                self._pending[2].cancel()
                self._pending = None
            self.running = copy.deepcopy(self.candidate)
        return etree.Element("ok")

    def rpc_cancel_commit(self, session: _PeerSession, rpc: etree._Element, *params: Any) -> etree._Element:
        self._fault(session, rpc, "cancel-commit")
        with self.lock:
            if self._pending is None:
                raise ncerror.RPCServerError(rpc, "application", "operation-failed", message="no confirmed commit")
            self._revert()
        return etree.Element("ok")

    def rpc_unlock(self, session: _PeerSession, rpc: etree._Element | None, target: str) -> etree._Element:
        if rpc is None and target == "candidate":  # the session ended holding the lock: drop its edits
            with self.lock:
                self.candidate = copy.deepcopy(self.running)
        return etree.Element("ok")

    def _revert(self) -> None:
        assert self._pending is not None
        self._pending[2].cancel()
        self.running = self._pending[1]
        self.candidate = copy.deepcopy(self.running)
        self._pending = None

    def _expire(self, session_id: int) -> None:
        with self.lock:
            if self._pending is not None and self._pending[0] == session_id:
                self._revert()

    def session_ended(self, session_id: int) -> None:
        with self.lock:
            if self.revert_on_session_close and self._pending is not None and self._pending[0] == session_id:
                self._revert()


@contextmanager
def running_peer(**options: Any) -> Iterator[NetconfPeer]:
    """A started ``NetconfPeer``, stopped on exit."""
    peer = NetconfPeer(**options).start()
    try:
        yield peer
    finally:
        peer.stop()
