"""Evaluation data: a generic JSONL loader where the user maps the fields, and the known sets by name.

Every problem becomes a :class:`Problem` (id, question, gold answer). The loader is strict on purpose: a
benchmark that silently skips a malformed line or a missing field reports a number about a different data
set, so every such line raises :class:`DatasetError` naming the file, the line and the field.
"""

from __future__ import annotations

import json
import os
import random
import string
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thinkloop.exceptions import DatasetError

DATA_ENV = "THINKLOOP_DATA"
"""Environment variable naming the folder that holds the known sets (``gsm8k/test.jsonl``, ...)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One evaluation item. ``line`` is its 1-based line in the source file, for error messages."""

    id: str
    question: str
    answer: str
    line: int = 0
    check: dict[str, Any] | None = field(default=None, hash=False)
    """What passes, for a task judged by a check instead of a gold answer (see
    :func:`thinkloop.verifiers.spec.verifier_from_check`); ``None``: compare with ``answer``."""


@dataclass(frozen=True, slots=True)
class Dataset:
    """A loaded (and possibly subset) data set; ``name`` identifies it in results and reports."""

    name: str
    path: Path
    problems: tuple[Problem, ...]

    def __len__(self) -> int:
        return len(self.problems)

    def __iter__(self) -> Iterator[Problem]:
        return iter(self.problems)


def _after_marker(marker: str) -> Callable[[str], str]:
    """GSM8K's gold answer is the text after ``#### `` at the end of a worked solution."""

    def parse(value: str) -> str:
        _, sep, tail = value.rpartition(marker)
        if not sep:
            raise ValueError(f"no {marker.strip()!r} marker")
        return tail.strip().replace(",", "")

    return parse


@dataclass(frozen=True, slots=True)
class KnownSet:
    """How one of the shipped-beside data sets maps to :class:`Problem` fields."""

    folder: str
    question_field: str
    answer_field: str
    id_field: str | None = None
    answer_parser: Callable[[str], str] | None = None
    file: str = "test.jsonl"
    check_field: str | None = None
    source: str = ""
    """Where the data comes from and its licence, for ``--help``."""


KNOWN_SETS: dict[str, KnownSet] = {
    "gsm8k": KnownSet(
        "gsm8k",
        "question",
        "answer",
        None,
        _after_marker("####"),
        source="GSM8K test split (openai/grade-school-math, MIT)",
    ),
    "math500": KnownSet(
        "math500",
        "problem",
        "answer",
        "unique_id",
        source="MATH-500 from openai/prm800k (MIT; MATH by Hendrycks et al., MIT)",
    ),
    "svamp": KnownSet(
        "svamp", "{Body} {Question}", "Answer", "ID", source="SVAMP test set (Patel et al. 2021, arkilpatel/SVAMP, MIT)"
    ),
    "verifiable": KnownSet(
        "verifiable",
        "question",
        "answer",
        "id",
        check_field="check",
        source="checkable tasks made by scripts/make_verifiable_tasks.py; "
        "verifiable-FAMILY runs one family (words, constraints, game24, sumproduct, code, ph)",
    ),
}
FAMILY_SEPARATOR = "-"
"""``verifiable-words``: the ``words`` family of the ``verifiable`` set (problem ids are ``FAMILY-NNN``)."""


def shipped_data_dir() -> Path:
    """The copies of the known sets that ship inside the package (see its ``data/README.md``)."""
    from importlib.resources import files

    return Path(str(files("thinkloop.bench") / "data"))


def known_sets_help() -> str:
    """One line per known set: its name and where it comes from (for ``--help``)."""
    return "; ".join(f"{name}: {known.source}" for name, known in KNOWN_SETS.items())


def default_data_dir() -> Path:
    """``$THINKLOOP_DATA``, else ``../shared/data`` from the working directory (the project's layout)."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    return Path.cwd().parent / "shared" / "data"


def _template_fields(template: str) -> list[str]:
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise DatasetError(f"question field template {template!r} is malformed: {exc}") from exc


def _field(row: dict[str, Any], name: str, where: str) -> Any:
    if name not in row:
        raise DatasetError(f"{where}: missing field {name!r}")
    value = row[name]
    if value is None:
        raise DatasetError(f"{where}: field {name!r} is null")
    return value


def _as_text(value: Any) -> str:
    """Numbers keep their value's text (``14.0`` stays ``14.0``; equivalence compares by value later)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return json.dumps(value)
    return repr(value) if isinstance(value, float) else str(value)


def load_jsonl(
    path: str | Path,
    *,
    question_field: str,
    answer_field: str,
    id_field: str | None = None,
    answer_parser: Callable[[str], str] | None = None,
    name: str | None = None,
    check_field: str | None = None,
) -> Dataset:
    """Load a JSONL file, one object per line.

    Args:
        path: the file.
        question_field: a field name, or a template joining several (``"{Body} {Question}"``).
        answer_field: the gold answer's field; numbers and strings are both fine (``"9 (apples)"``, ``14.0``).
        id_field: the problem's id; by default the 1-based line number.
        answer_parser: turns the raw gold text into the answer (GSM8K's ``#### 18``).
        name: the data set's name in results (default: the file's stem, or its folder for ``test.jsonl``).
        check_field: a field holding each problem's check (a mapping with a ``kind``), for tasks judged by a
            verifier instead of a gold answer.

    Raises:
        DatasetError: naming ``file:line`` and the field, for a malformed line, a missing field or a
            duplicate id.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the data set: {exc.strerror or exc}") from exc
    template = "{" in question_field
    fields = _template_fields(question_field) if template else [question_field]
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno})") from exc
        if not isinstance(row, dict):
            raise DatasetError(f"{where}: expected a JSON object, got {type(row).__name__}")
        values = {f: _as_text(_field(row, f, where)) for f in fields}
        question = question_field.format(**values) if template else values[question_field]
        gold = _as_text(_field(row, answer_field, where))
        if answer_parser is not None:
            try:
                gold = answer_parser(gold)
            except ValueError as exc:
                raise DatasetError(f"{where}: field {answer_field!r} has no answer: {exc}") from exc
        ident = _as_text(_field(row, id_field, where)) if id_field else str(number)
        if ident in seen:
            raise DatasetError(
                f"{where}: field {id_field or 'line'!r} repeats id {ident!r} (first on line {seen[ident]})"
            )
        seen[ident] = number
        check = None
        if check_field is not None:
            check = _field(row, check_field, where)
            if not isinstance(check, dict) or "kind" not in check:
                raise DatasetError(f"{where}: field {check_field!r} is not a check (an object with a 'kind')")
        problems.append(Problem(id=ident, question=question, answer=gold, line=number, check=check))
    if name is None:
        name = path.parent.name if path.stem in ("test", "train", "data") and path.parent.name else path.stem
    return Dataset(name=name, path=path, problems=tuple(problems))


def _known_path(known: KnownSet, source: str | Path, data_dir: str | Path | None) -> Path:
    """The known set's file: in ``data_dir`` when given; else in ``$THINKLOOP_DATA`` or ``../shared/data``
    when there; else the copy shipped in the package."""
    if data_dir is not None:
        path = Path(data_dir) / known.folder / known.file
        if not path.exists():
            raise DatasetError(f"{path}: the {source} data set is not there; pass --data-dir or set ${DATA_ENV}")
        return path
    path = default_data_dir() / known.folder / known.file
    if path.exists():
        return path
    shipped = shipped_data_dir() / known.folder / known.file
    if not shipped.exists():
        raise DatasetError(
            f"{path}: the {source} data set is not there (nor in the package); pass --data-dir or set ${DATA_ENV}"
        )
    return shipped


def _family(dataset: Dataset, family: str) -> Dataset:
    problems = tuple(p for p in dataset.problems if p.id.rpartition(FAMILY_SEPARATOR)[0] == family)
    if not problems:
        families = sorted({p.id.rpartition(FAMILY_SEPARATOR)[0] for p in dataset.problems})
        raise DatasetError(f"{dataset.path}: no {family!r} family; families: {', '.join(families)}")
    return Dataset(name=dataset.name, path=dataset.path, problems=problems)


def subset(
    dataset: Dataset, *, limit: int | None = None, seed: int | None = None, ids: Sequence[str] | None = None
) -> Dataset:
    """Pick problems: by ``ids`` (in file order), then ``limit`` of them, the first or a ``seed``-ed sample."""
    problems: Iterable[Problem] = dataset.problems
    if ids:
        known = {p.id for p in dataset.problems}
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise DatasetError(f"{dataset.path}: no problem with id {unknown[0]!r}")
        wanted = set(ids)
        problems = [p for p in dataset.problems if p.id in wanted]
    chosen = list(problems)
    if limit is not None and limit < len(chosen):
        if seed is None:
            chosen = chosen[:limit]
        else:
            picked = set(random.Random(seed).sample(range(len(chosen)), limit))
            chosen = [p for i, p in enumerate(chosen) if i in picked]
    elif seed is not None and limit is None:
        random.Random(seed).shuffle(chosen)
    return Dataset(name=dataset.name, path=dataset.path, problems=tuple(chosen))


def load_dataset(
    source: str | Path,
    *,
    question_field: str | None = None,
    answer_field: str | None = None,
    id_field: str | None = None,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    seed: int | None = None,
    ids: Sequence[str] | None = None,
) -> Dataset:
    """Load a known set by name (``gsm8k``, ``math500``, ``svamp``, ``verifiable``, ``verifiable-FAMILY``) or any
    JSONL file with mapped fields. A known set comes from ``data_dir``, else ``$THINKLOOP_DATA`` or
    ``../shared/data``, else the copy shipped in the package.

    Field options given for a known set override its mapping.
    """
    name = str(source).lower()
    family = None
    if not Path(source).suffix and name not in KNOWN_SETS and FAMILY_SEPARATOR in name:
        base, _, family = name.partition(FAMILY_SEPARATOR)
        if KNOWN_SETS.get(base) is None or KNOWN_SETS[base].check_field is None:
            family = None
    base = name.partition(FAMILY_SEPARATOR)[0] if family else name
    known = KNOWN_SETS.get(base) if not Path(source).suffix else None
    if known is not None:
        path = _known_path(known, source, data_dir)
        dataset = load_jsonl(
            path,
            question_field=question_field or known.question_field,
            answer_field=answer_field or known.answer_field,
            id_field=id_field if id_field is not None else known.id_field,
            answer_parser=known.answer_parser if answer_field is None else None,
            name=name,
            check_field=known.check_field,
        )
        if family is not None:
            dataset = _family(dataset, family)
    else:
        if question_field is None or answer_field is None:
            missing = "--question-field" if question_field is None else "--answer-field"
            raise DatasetError(f"{source}: a JSONL file needs {missing} (known sets: {', '.join(KNOWN_SETS)})")
        dataset = load_jsonl(source, question_field=question_field, answer_field=answer_field, id_field=id_field)
    return subset(dataset, limit=limit, seed=seed, ids=ids)
