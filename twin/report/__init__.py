"""What a run of the twin against a network produced: ``summary.json`` and ``report.html``."""

from twin.report.cm import change_row, cm_summary
from twin.report.html import render_report
from twin.report.summary import PublishedPeriod, build_summary

__all__ = ["PublishedPeriod", "build_summary", "change_row", "cm_summary", "render_report"]
