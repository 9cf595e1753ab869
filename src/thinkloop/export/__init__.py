"""Distil the loop: verified traces become fine-tuning and preference data (``thinkloop export``).

>>> from thinkloop.export import ExportOptions, export_traces
>>> report = export_traces(["traces/"], "train.jsonl", ExportOptions(format="openai-sft"))  # doctest: +SKIP
"""

from thinkloop.export.candidates import ExportError, Reply, Verdict, replies
from thinkloop.export.export import KEEPS, ExportOptions, ExportReport, export_traces, judge, provenance_path
from thinkloop.export.formats import FORMATS, SCHEMAS

__all__ = [
    "FORMATS",
    "KEEPS",
    "SCHEMAS",
    "ExportError",
    "ExportOptions",
    "ExportReport",
    "Reply",
    "Verdict",
    "export_traces",
    "judge",
    "provenance_path",
    "replies",
]
