"""How each PM measurement aggregates over time: the collection method of TS 28.552 / 32.425.

A cumulative counter (CC) reports a delta per granularity period, so periods add up; a status
inspection (SI) or gauge is a sample, so periods are averaged (or max'ed for peak gauges) and never
summed; a discrete event registration (DER) such as mean UE throughput is averaged. Names are
matched on their base ``Family.MeasurementName``; subcounters (``.Bin12``, ``.01``, ``.<SNSSAI>``)
inherit the base's method, and distribution bins are counts.

>>> method_of("RRU.PrbTotDl"), method_of("MM.HoExeInterReq"), method_of("L1M.SS-RSRP.Bin12")
(<Method.SI_MEAN: 'si_mean'>, <Method.CC: 'cc'>, <Method.CC: 'cc'>)
>>> method_of("VS.Vendor.Thing") is None
True
>>> aggregate(Method.SI_MEAN, [60.0, 70.0]), aggregate(Method.CC, [10.0, 5.0])
(65.0, 15.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

__all__ = ["CATALOGUE", "Method", "aggregate", "base_name", "is_counter", "method_of"]


class Method(StrEnum):
    CC = "cc"  # cumulative counter, a delta per period: sum across periods
    SI_MEAN = "si_mean"  # sampled gauge (mean over the period): mean across periods
    SI_MAX = "si_max"  # peak gauge: max across periods
    SI_MIN = "si_min"
    DER = "der"  # discrete event registration (e.g. mean throughput): mean across periods


_M = Method
# Base names (Family.MeasurementName) of TS 28.552 (NR) and TS 32.425 (LTE) the twin knows.
CATALOGUE: dict[str, Method] = {
    # NR PRB usage (5.1.1.2)
    "RRU.PrbTotDl": _M.SI_MEAN, "RRU.PrbTotUl": _M.SI_MEAN,
    "RRU.PrbUsedDl": _M.SI_MEAN, "RRU.PrbUsedUl": _M.SI_MEAN,
    "RRU.PrbAvailDl": _M.SI_MEAN, "RRU.PrbAvailUl": _M.SI_MEAN,
    "RRU.MaxPrbUsedDl": _M.SI_MAX, "RRU.MaxPrbUsedUl": _M.SI_MAX,
    "RRU.PrbTotDlDist": _M.CC, "RRU.PrbTotUlDist": _M.CC,
    # UE throughput and volumes (5.1.1.3, 5.1.2.1)
    "DRB.UEThpDl": _M.DER, "DRB.UEThpUl": _M.DER,
    "DRB.UEThpDlDist": _M.CC, "DRB.UEThpUlDist": _M.CC,
    "DRB.UEUnresVolDl": _M.DER, "DRB.UEUnresVolUl": _M.DER,
    "DRB.PdcpSduVolumeDL": _M.CC, "DRB.PdcpSduVolumeUL": _M.CC,
    "DRB.RlcSduTransmittedVolumeDL": _M.CC, "DRB.RlcSduTransmittedVolumeUL": _M.CC,
    # Delays (5.1.1.1, 5.1.3.3)
    "DRB.AirIfDelayDl": _M.DER, "DRB.AirIfDelayUl": _M.DER,
    "DRB.RlcDelayUl": _M.DER, "DRB.RlcSduDelayDl": _M.DER,
    "DRB.AirIfDelayDist": _M.CC, "DRB.RlcSduLatencyDl": _M.DER,
    # Connected / active UEs (5.1.1.4, 5.1.1.23)
    "RRC.ConnMean": _M.SI_MEAN, "RRC.ConnMax": _M.SI_MAX,
    "RRC.InactiveConnMean": _M.SI_MEAN, "RRC.InactiveConnMax": _M.SI_MAX,
    "DRB.MeanActiveUeDl": _M.SI_MEAN, "DRB.MeanActiveUeUl": _M.SI_MEAN,
    "DRB.MaxActiveUeDl": _M.SI_MAX, "DRB.MaxActiveUeUl": _M.SI_MAX,
    # Accessibility and retainability (5.1.1.10, 5.1.1.15-17)
    "RRC.ConnEstabAtt": _M.CC, "RRC.ConnEstabSucc": _M.CC,
    "RRC.ReEstabAtt": _M.CC, "RRC.ReEstabSuccWithUeContext": _M.CC,
    "RRC.ReEstabSuccWithoutUeContext": _M.CC,
    "DRB.EstabAtt": _M.CC, "DRB.EstabSucc": _M.CC, "DRB.RelActNbr": _M.CC,
    "DRB.InitialEstabAtt": _M.CC, "DRB.InitialEstabSucc": _M.CC,
    "UECNTX.ConnEstabAtt": _M.CC, "UECNTX.ConnEstabSucc": _M.CC, "UECNTX.RelReq": _M.CC,
    "QF.EstabAtt": _M.CC, "QF.EstabSucc": _M.CC, "QF.RelActNbr": _M.CC,
    # Mobility (5.1.1.6, 5.1.1.25)
    "MM.HoPrepInterReq": _M.CC, "MM.HoPrepInterSucc": _M.CC, "MM.HoPrepInterFail": _M.CC,
    "MM.HoResAlloInterReq": _M.CC, "MM.HoResAlloInterSucc": _M.CC, "MM.HoResAlloInterFail": _M.CC,
    "MM.HoExeInterReq": _M.CC, "MM.HoExeInterSucc": _M.CC, "MM.HoExeInterFail": _M.CC,
    "MM.HoExeIntraReq": _M.CC, "MM.HoExeIntraSucc": _M.CC,
    "MM.HoPrepIntraReq": _M.CC, "MM.HoPrepIntraSucc": _M.CC,
    "MM.HoExeIntraFreqReq": _M.CC, "MM.HoExeIntraFreqSucc": _M.CC,
    "MM.HoExeInterFreqReq": _M.CC, "MM.HoExeInterFreqSucc": _M.CC,
    "HO.IntraSys.TooEarly": _M.CC, "HO.IntraSys.TooLate": _M.CC, "HO.IntraSys.ToWrongCell": _M.CC,
    "HO.InterSys.PingPong": _M.CC,
    # BLER, CQI, MCS (5.1.1.7, 5.1.1.11, 5.1.1.12)
    "TB.TotNbrDl": _M.CC, "TB.ErrTotNbrDl": _M.CC, "TB.TotNbrDlInitial": _M.CC,
    "TB.IntialErrNbrDl": _M.CC, "TB.TotNbrUl": _M.CC, "TB.ErrTotNbrUl": _M.CC,
    "TB.TotNbrUlInit": _M.CC, "TB.ErrNbrUlInitial": _M.CC,
    "CARR.WBCQIDist": _M.CC, "CARR.PDSCHMCSDist": _M.CC, "CARR.PUSCHMCSDist": _M.CC,
    # Radio measurements distributions (5.1.1.22, .26, .31, .32)
    "L1M.SS-RSRP": _M.CC, "L1M.SS-RSRPNrNbr": _M.CC, "L1M.RSRPEutraNbr": _M.CC,
    "MR.NRScSRSRSRP": _M.CC, "MR.NRScSSRSRQ": _M.CC, "MR.NRScSSSINR": _M.CC,
    "L1M.ATADist": _M.CC, "L1M.PHR1": _M.CC,
    # Power and energy (5.1.1.29, 5.1.1.19)
    "CARR.MaxTxPwr": _M.SI_MAX, "CARR.MeanTxPwr": _M.SI_MEAN,
    "PEE.AvgPower": _M.SI_MEAN, "PEE.MinPower": _M.SI_MIN, "PEE.MaxPower": _M.SI_MAX,
    "PEE.Energy": _M.CC, "PEE.AvgTemperature": _M.SI_MEAN,
    # RACH and beams (5.1.1.20, 5.1.1.21)
    "RACH.PreambleDedCell": _M.CC, "RACH.PreambleACell": _M.CC, "RACH.PreambleBCell": _M.CC,
    "RACH.AccessDelayDist": _M.CC,
    "MR.IntraCellSSBSwitchReq": _M.CC, "MR.IntrCellSuccSSBSwitch": _M.CC,
    # LTE (TS 32.425) equivalents
    "RRU.PrbDl": _M.SI_MEAN, "RRU.PrbUl": _M.SI_MEAN,
    "HO.ExeAtt": _M.CC, "HO.ExeSucc": _M.CC, "HO.PrepAtt": _M.CC, "HO.PrepSucc": _M.CC,
}


def base_name(name: str) -> str:
    """``Family.MeasurementName`` of a possibly subcountered name.

    >>> base_name("DRB.UEThpDl.010003e8"), base_name("HO.IntraSys.TooEarly")
    ('DRB.UEThpDl', 'HO.IntraSys.TooEarly')
    """
    if name in CATALOGUE:
        return name
    parts = name.split(".")
    for n in range(len(parts) - 1, 1, -1):
        candidate = ".".join(parts[:n])
        if candidate in CATALOGUE:
            return candidate
    return ".".join(parts[:2])


def method_of(name: str) -> Method | None:
    """The collection method of a measurement, or None if the twin does not know the name."""
    method = CATALOGUE.get(name)
    if method is None:
        method = CATALOGUE.get(base_name(name))
    return method


def is_counter(name: str) -> bool:
    return method_of(name) is Method.CC


def aggregate(method: Method | None, values: Sequence[float]) -> float:
    """Combine per-period values of one measurement the way its collection method allows."""
    if not values:
        raise ValueError("no values to aggregate")
    if method is Method.CC:
        return float(sum(values))
    if method is Method.SI_MAX:
        return float(max(values))
    if method is Method.SI_MIN:
        return float(min(values))
    return float(sum(values) / len(values))  # SI_MEAN, DER and unknown names: never summed
