"""What a run of the twin against a network produced: ``summary.json`` and ``report.html``."""

from twin.report.html import render_report
from twin.report.summary import PublishedPeriod, build_summary

__all__ = ["PublishedPeriod", "build_summary", "render_report"]
