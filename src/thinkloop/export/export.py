"""Turn verified traces into training data: supervised records of accepted replies, or preference pairs.

This is rejection-sampling fine-tuning (STaR, RFT) on what thinkloop already does: sample, check, and keep
what the check accepted. What counts as good is the caller's choice (:attr:`ExportOptions.keep`): a passed
check, an answer equal to the bench's gold, or both; nothing else is ever exported as good, and only a reply
that ended on its own (``finish_reason == "stop"``) of a node that finished is exported at all.

Every record gets a provenance line (trace, run, node, verdict, gold) in a sidecar file, line for line:
OpenAI's fine-tuning files refuse unknown keys, so provenance cannot ride inside the record.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from thinkloop.export.candidates import ExportError, Reply, gold_by_trace, replies, trace_files
from thinkloop.export.formats import (
    FORMATS,
    PREFERENCE_FORMATS,
    THINKING_FORMATS,
    PromptMode,
    Skip,
    preference_record,
    sft_record,
    validated,
)
from thinkloop.verifiers import answers_equivalent

Keep = Literal["passed", "correct", "passed+correct"]
KEEPS: tuple[str, ...] = ("passed", "correct", "passed+correct")


@dataclass(frozen=True)
class ExportOptions:
    """What to export and how.

    Args:
        format: one of :data:`~thinkloop.export.formats.FORMATS`.
        keep: what makes a reply good: ``passed`` (the run's check accepted it), ``correct`` (its answer equals
            the gold answer of a bench results file) or ``passed+correct`` (both). For preference pairs the
            rejected side is a reply that failed the same test (rejected by the check, or wrong against gold).
        results: a ``bench run`` results file giving each trace's gold answer (needed for ``correct``).
        prompt: ``question`` (the question alone as the user message) or ``sent`` (the conversation exactly
            as the model got it: system prompt, earlier rounds and the check's feedback).
        thinking: put the model's visible thinking beside the reply (formats with a place for it only).
        strategy: keep runs whose strategy matches this shell pattern (``"cot*"``).
        min_score: keep replies whose verdict scored at least this.
        per_question: at most this many records per question (``None``: all).
        dedupe: drop a record whose question and reply (and, for pairs, rejected reply) were exported already.
    """

    format: str
    keep: Keep = "passed"
    results: Path | None = None
    prompt: PromptMode = "question"
    thinking: bool = False
    strategy: str | None = None
    min_score: float | None = None
    per_question: int | None = None
    dedupe: bool = True

    def check(self) -> None:
        """One clear error for options that cannot work together."""
        if self.format not in FORMATS:
            raise ExportError(f"unknown export format {self.format!r}: one of {', '.join(FORMATS)}")
        if self.keep not in KEEPS:
            raise ExportError(f"unknown keep rule {self.keep!r}: one of {', '.join(KEEPS)}")
        if "correct" in self.keep and self.results is None:
            raise ExportError(
                f"keep={self.keep} compares answers with gold: give the bench results file (--results RESULTS.jsonl)"
            )
        if self.thinking and self.format not in THINKING_FORMATS:
            raise ExportError(
                f"{self.format} has no place for the model's thinking: use "
                f"{' or '.join(sorted(THINKING_FORMATS))}, or leave thinking out"
            )
        if self.per_question is not None and self.per_question < 1:
            raise ExportError("per_question must be at least 1")


@dataclass
class ExportReport:
    """What an export read and wrote, so nothing is dropped without a count and a reason."""

    output: Path
    provenance: Path
    records: int = 0
    traces: int = 0
    runs: int = 0
    replies: int = 0
    good: int = 0
    bad: int = 0
    left_out: Counter[str] = field(default_factory=Counter)
    """Replies neither good nor bad, by reason: cut off, failed, unchecked, no gold, below min_score...
    ``good + bad + sum(left_out.values()) == replies``."""
    dropped: Counter[str] = field(default_factory=Counter)
    """Records not written, by reason: duplicate, over per_question, no rejected reply to pair with..."""

    def summary(self) -> str:
        def listed(counts: Counter[str]) -> str:
            return ", ".join(f"{count} {reason}" for reason, count in sorted(counts.items())) or "none"

        return (
            f"{self.records} records to {self.output} (provenance: {self.provenance}) from {self.replies} "
            f"replies in {self.runs} runs of {self.traces} traces; good {self.good}, bad {self.bad}, "
            f"left out: {listed(self.left_out)}; records dropped: {listed(self.dropped)}"
        )


def provenance_path(output: Path) -> Path:
    """The sidecar beside ``output``: ``train.jsonl`` -> ``train.provenance.jsonl``."""
    return output.with_name(f"{output.stem}.provenance{output.suffix or '.jsonl'}")


def export_traces(paths: Iterable[str | Path], output: str | Path, options: ExportOptions) -> ExportReport:
    """Read every trace under ``paths`` (whole, or refuse), write the records to ``output`` and provenance
    beside it. Nothing is written unless every trace was read and every record passed its schema."""
    options.check()
    output = Path(output)
    files = trace_files(paths)
    gold = gold_by_trace(options.results) if options.results is not None else {}
    report = ExportReport(output=output, provenance=provenance_path(output), traces=len(files))
    found: list[Reply] = []
    for path in files:
        runs = set()
        for reply in replies(path):
            runs.add(reply.run_id)
            found.append(_with_gold(reply, gold.get(path.resolve())))
        report.runs += len(runs)
    report.replies = len(found)
    lines = list(_records(found, options, report))
    _write(output, report.provenance, lines)
    report.records = len(lines)
    return report


def _with_gold(reply: Reply, gold: tuple[str, str] | None) -> Reply:
    if gold is None:
        return reply
    answer, problem = gold
    return replace(reply, gold=answer, problem=problem, correct=answers_equivalent(reply.answer, answer))


def judge(reply: Reply, keep: Keep) -> bool | None:
    """Good (``True``), bad (``False``) or unknown (``None``: the test was never run on it)."""
    tests = []
    if "passed" in keep:
        tests.append(reply.verdict.accepted)
    if "correct" in keep:
        tests.append(reply.correct)
    if any(t is False for t in tests):
        return False
    if any(t is None for t in tests):
        return None
    return True


def _records(found: list[Reply], options: ExportOptions, report: ExportReport) -> Iterator[tuple[dict, dict]]:
    good: dict[str, list[Reply]] = {}
    bad: dict[str, list[Reply]] = {}
    for reply in found:
        if not reply.usable:
            report.left_out[reply.why or "unusable"] += 1
            continue
        if options.strategy is not None and not fnmatch.fnmatchcase(reply.strategy, options.strategy):
            report.left_out["other strategy"] += 1
            continue
        verdict = judge(reply, options.keep)
        if verdict is None:
            report.left_out[
                "unchecked" if "passed" in options.keep and reply.verdict.accepted is None else "no gold"
            ] += 1
            continue
        if verdict and options.min_score is not None and (reply.verdict.score or 0.0) < options.min_score:
            report.left_out["below min_score"] += 1
            continue
        (good if verdict else bad).setdefault(reply.question, []).append(reply)
    report.good = sum(map(len, good.values()))
    report.bad = sum(map(len, bad.values()))
    seen: set[tuple[str, ...]] = set()
    for question, chosen in good.items():
        made = 0
        pairs = (
            [(c, None) for c in chosen]
            if options.format not in PREFERENCE_FORMATS
            else [(c, r) for c in chosen for r in bad.get(question, [])]
        )
        if options.format in PREFERENCE_FORMATS and not bad.get(question):
            report.dropped["no rejected reply to pair with"] += len(chosen)
        for accepted, rejected in pairs:
            if options.per_question is not None and made >= options.per_question:
                report.dropped["over per_question"] += 1
                continue
            if rejected is not None and rejected.text == accepted.text:
                # the same words judged both ways (a judge that samples, a check that changed): no preference
                report.dropped["same reply judged both ways"] += 1
                continue
            key = (question, accepted.text, rejected.text if rejected is not None else "")
            if options.dedupe and key in seen:
                report.dropped["duplicate"] += 1
                continue
            try:
                record = _record(options, accepted, rejected)
            except Skip as exc:
                report.dropped[str(exc)] += 1
                continue
            seen.add(key)
            made += 1
            provenance = accepted.provenance()
            if rejected is not None:
                provenance = {"chosen": provenance, "rejected": rejected.provenance()}
            yield validated(options.format, record), provenance


def _record(options: ExportOptions, accepted: Reply, rejected: Reply | None) -> dict[str, Any]:
    if rejected is None:
        return sft_record(options.format, accepted, prompt=options.prompt, thinking=options.thinking)
    return preference_record(options.format, accepted, rejected, prompt=options.prompt, thinking=options.thinking)


def _write(output: Path, provenance: Path, lines: list[tuple[dict, dict]]) -> None:
    """Write both files whole or not at all: to temporary names, flushed and synced, then renamed."""
    output.parent.mkdir(parents=True, exist_ok=True)
    staged = []
    try:
        for path, column in ((output, 0), (provenance, 1)):
            temporary = path.with_name(f".{path.name}.partial")
            staged.append((temporary, path))
            with temporary.open("w", encoding="utf-8") as handle:
                for line in lines:
                    handle.write(json.dumps(line[column], ensure_ascii=False, separators=(",", ":")) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        for temporary, path in staged:
            os.replace(temporary, path)
    except OSError as exc:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
        raise ExportError(f"cannot write {output}: {exc.strerror or exc}") from exc
