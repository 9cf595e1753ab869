"""The results store: append-only JSONL that survives a torn last line and lets a later record supersede."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thinkloop.bench.store import Record, ResultStore, latest, read_records
from thinkloop.exceptions import DatasetError


def record(problem: str, *, status: str = "done", config: str = "c", correct: bool | None = True) -> Record:
    return Record(
        config=config,
        strategy="cot",
        model="m",
        dataset="d",
        id=problem,
        status=status,
        gold="1",
        prediction="1" if status == "done" else None,
        correct=correct if status == "done" else None,
        prompt_tokens=10,
        completion_tokens=5,
        calls=1,
        latency_s=0.5,
        error="BackendError: boom" if status == "failed" else None,
    )


def test_records_round_trip_in_order(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with ResultStore(path) as store:
        store.append(record("a"))
        store.append(record("b", correct=False))
    assert read_records(path) == [record("a"), record("b", correct=False)]
    assert path.read_text().count("\n") == 2


def test_a_torn_last_line_is_ignored_and_cut_before_the_next_append(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with ResultStore(path) as store:
        store.append(record("a"))
    whole = record("b").model_dump_json(exclude_none=True)
    with path.open("a") as file:
        file.write(whole[: len(whole) // 2])  # a SIGKILL mid-write
    assert [r.id for r in read_records(path)] == ["a"]
    with ResultStore(path) as store:
        assert store.status("c", "b") is None  # so the problem runs again
        store.append(record("b"))
    assert [r.id for r in read_records(path)] == ["a", "b"]
    assert all(line.startswith("{") for line in path.read_text().splitlines())


def test_a_whole_last_line_without_its_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(record("a").model_dump_json(exclude_none=True))
    with ResultStore(path) as store:
        store.append(record("b"))
    assert [r.id for r in read_records(path)] == ["a", "b"]


def test_a_bad_line_in_the_middle_is_an_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(record("a").model_dump_json() + "\n" + '{"config": "c"}\n' + record("b").model_dump_json() + "\n")
    with pytest.raises(DatasetError, match=f"^{re.escape(str(path))}:2: bad result record, field "):
        read_records(path)


def test_the_latest_record_for_a_key_supersedes_earlier_ones(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with ResultStore(path) as store:
        store.append(record("a", status="failed"))
        store.append(record("b"))
        store.append(record("a"))
    newest = latest(read_records(path))
    assert list(newest) == [("c", "a"), ("c", "b")]
    assert newest[("c", "a")].status == "done"
    with ResultStore(path) as store:
        assert store.status("c", "a") == "done"


@given(cut=st.integers(min_value=0, max_value=10_000))
def test_any_truncation_reads_as_a_prefix_of_the_records(tmp_path_factory: pytest.TempPathFactory, cut: int) -> None:
    path = tmp_path_factory.mktemp("cut") / "r.jsonl"
    records = [record(f"p{i}", correct=i % 2 == 0) for i in range(8)]
    data = "".join(r.model_dump_json(exclude_none=True) + "\n" for r in records).encode()
    path.write_bytes(data[: cut % (len(data) + 1)])
    read = read_records(path)
    assert read == records[: len(read)]
    with ResultStore(path) as store:  # reopening repairs; appending after it keeps every line whole
        store.append(record("new"))
    assert read_records(path) == [*read, record("new")]
