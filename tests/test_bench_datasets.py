"""Data set loading: the known sets by name, any JSONL with mapped fields, strict one-line errors, subsets."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thinkloop.bench.datasets import Dataset, Problem, load_dataset, load_jsonl, subset
from thinkloop.exceptions import DatasetError

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A folder laid out like ../shared/data, with two rows per set in each set's real format."""
    root = tmp_path / "data"
    write_jsonl(
        root / "gsm8k" / "test.jsonl",
        [
            {"question": "Janet has 16 eggs and eats 3. How many are left?", "answer": "16 - 3 = 13\n#### 13"},
            {"question": "A shop sells 1,000 pens a day for 3 days.", "answer": "1000*3=3000\n#### 3,000"},
        ],
    )
    write_jsonl(
        root / "svamp" / "test.jsonl",
        [
            {
                "Answer": 145.0,
                "Question": "How big is each group?",
                "Body": "There are 290 bananas in 2 groups.",
                "ID": "chal-777",
                "Equation": "( 290.0 / 2.0 )",
                "Type": "Common-Division",
            },
            {
                "Answer": 19.0,
                "Question": "How much did Marco's weigh?",
                "Body": "Together they weighed 30 pounds.",
                "ID": "chal-508",
                "Equation": "( 30.0 - 11.0 )",
                "Type": "Subtraction",
            },
        ],
    )
    write_jsonl(
        root / "math500" / "test.jsonl",
        [
            {
                "problem": "Compute $1+1$.",
                "solution": "...",
                "answer": "2",
                "subject": "Algebra",
                "level": 1,
                "unique_id": "test/algebra/1.json",
            },
            {
                "problem": "Simplify $\\frac{6}{8}$.",
                "solution": "...",
                "answer": "\\frac{3}{4}",
                "subject": "Algebra",
                "level": 1,
                "unique_id": "test/algebra/2.json",
            },
        ],
    )
    return root


def test_known_sets_load_by_name_in_their_formats(data_dir: Path) -> None:
    gsm8k = load_dataset("gsm8k", data_dir=data_dir)
    assert [(p.id, p.answer) for p in gsm8k] == [("1", "13"), ("2", "3000")]
    svamp = load_dataset("svamp", data_dir=data_dir)
    assert svamp.problems[0] == Problem(
        id="chal-777", question="There are 290 bananas in 2 groups. How big is each group?", answer="145.0", line=1
    )
    math500 = load_dataset("math500", data_dir=data_dir)
    assert [p.id for p in math500] == ["test/algebra/1.json", "test/algebra/2.json"]
    assert math500.problems[1].answer == "\\frac{3}{4}"
    assert (gsm8k.name, svamp.name, math500.name) == ("gsm8k", "svamp", "math500")


def test_the_data_dir_defaults_to_the_environment(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THINKLOOP_DATA", str(data_dir))
    assert len(load_dataset("svamp")) == 2


def test_a_missing_known_set_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=re.escape(f"{tmp_path / 'gsm8k' / 'test.jsonl'}: the gsm8k data set")):
        load_dataset("gsm8k", data_dir=tmp_path)


@pytest.mark.skipif(not (SHARED_DATA / "svamp" / "test.jsonl").exists(), reason="shared data not present")
def test_the_real_shared_sets_load_whole() -> None:
    # (the verifiable set ships with the package; the shared folder holds the three public ones)
    sizes = {name: len(load_dataset(name, data_dir=SHARED_DATA)) for name in ("gsm8k", "math500", "svamp")}
    assert sizes == {"gsm8k": 1319, "math500": 500, "svamp": 1000}


def test_a_generic_file_maps_fields_and_joins_a_template(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "mine.jsonl",
        [
            {"body": "Tom has 4 apples and buys 5.", "q": "How many now?", "gold": "9 (apples)", "key": "a"},
            {"body": "A 7 by 2 box.", "q": "Its area?", "gold": 14.0, "key": "b"},
        ],
    )
    dataset = load_jsonl(path, question_field="{body} {q}", answer_field="gold", id_field="key")
    assert dataset.name == "mine"
    assert [(p.id, p.question, p.answer) for p in dataset] == [
        ("a", "Tom has 4 apples and buys 5. How many now?", "9 (apples)"),
        ("b", "A 7 by 2 box. Its area?", "14.0"),
    ]


def test_a_malformed_line_names_the_file_and_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [{"q": "1+1?", "a": 2}, "", '{"q": "2+2?", "a": 4', {"q": "x", "a": 1}])
    with pytest.raises(DatasetError, match=rf"^{re.escape(str(path))}:3: malformed JSON \("):
        load_jsonl(path, question_field="q", answer_field="a")


def test_a_line_that_is_not_an_object_names_the_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "list.jsonl", [{"q": "1+1?", "a": 2}, "[1, 2]"])
    with pytest.raises(DatasetError, match=rf"^{re.escape(str(path))}:2: expected a JSON object, got list$"):
        load_jsonl(path, question_field="q", answer_field="a")


@pytest.mark.parametrize(
    ("question_field", "answer_field", "missing"),
    [("q", "answer", "answer"), ("{q} {context}", "a", "context"), ("question", "a", "question")],
)
def test_a_missing_field_names_file_line_and_field(
    tmp_path: Path, question_field: str, answer_field: str, missing: str
) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"q": "1+1?", "a": 2, "context": "c"}, {"q": "2+2?", "a": 4}])
    line = 1 if missing != "context" else 2
    expected = f"{path}:{line}: missing field {missing!r}"
    with pytest.raises(DatasetError, match=f"^{re.escape(expected)}$"):
        load_jsonl(path, question_field=question_field, answer_field=answer_field)


def test_a_repeated_id_is_an_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"q": "a", "a": 1, "id": 7}, {"q": "b", "a": 2, "id": 7}])
    with pytest.raises(DatasetError, match=re.escape(f"{path}:2: field 'id' repeats id '7' (first on line 1)")):
        load_jsonl(path, question_field="q", answer_field="a", id_field="id")


def test_a_generic_file_needs_both_fields(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"q": "a", "a": 1}])
    with pytest.raises(DatasetError, match="needs --answer-field"):
        load_dataset(path, question_field="q")


def _dataset(size: int) -> Dataset:
    problems = tuple(Problem(id=f"p{i}", question=f"q{i}", answer=str(i), line=i + 1) for i in range(size))
    return Dataset(name="d", path=Path("d.jsonl"), problems=problems)


def test_subsets_by_limit_and_ids() -> None:
    dataset = _dataset(10)
    assert [p.id for p in subset(dataset, limit=3)] == ["p0", "p1", "p2"]
    assert [p.id for p in subset(dataset, ids=["p7", "p2"])] == ["p2", "p7"]
    with pytest.raises(DatasetError, match="no problem with id 'p99'"):
        subset(dataset, ids=["p99"])


@given(size=st.integers(1, 60), limit=st.integers(1, 80), seed=st.integers(0, 2**32))
def test_a_seeded_sample_is_reproducible_distinct_and_in_file_order(size: int, limit: int, seed: int) -> None:
    dataset = _dataset(size)
    first = subset(dataset, limit=limit, seed=seed)
    assert first == subset(dataset, limit=limit, seed=seed)
    ids = [p.id for p in first]
    assert len(ids) == min(size, limit) == len(set(ids))
    assert [p.line for p in first] == sorted(p.line for p in first)


def test_the_command_reports_a_malformed_line_in_one_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [{"q": "1+1?", "a": 2}, "{oops"])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "thinkloop",
            "bench",
            "run",
            str(path),
            "--question-field",
            "q",
            "--answer-field",
            "a",
            "--strategy",
            "direct",
            "--simulated",
            "1.0",
            "--out",
            str(tmp_path / "out.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert re.fullmatch(rf"thinkloop bench: error: {re.escape(str(path))}:2: malformed JSON \(.*\)", lines[0])
    assert not (tmp_path / "out.jsonl").exists()


def test_the_command_reports_a_missing_field_in_one_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"q": "1+1?", "a": 2}, {"q": "2+2?"}])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "thinkloop",
            "bench",
            "run",
            str(path),
            "--question-field",
            "q",
            "--answer-field",
            "a",
            "--strategy",
            "direct",
            "--simulated",
            "1.0",
            "--out",
            str(tmp_path / "out.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr == f"thinkloop bench: error: {path}:2: missing field 'a'\n"


def test_a_gsm8k_solution_without_its_marker_names_the_line_and_field(data_dir: Path) -> None:
    path = write_jsonl(data_dir / "gsm8k" / "test.jsonl", [{"question": "q", "answer": "no final line"}])
    with pytest.raises(DatasetError, match=f"^{re.escape(f'{path}:1: field ')}'answer' has no answer"):
        load_dataset("gsm8k", data_dir=data_dir)
