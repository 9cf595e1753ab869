"""The verifiable-tasks set: generated reproducibly, every reference passes its own check, loaded by name
(and by family), run by the harness with each problem's check as the verifier and as the judge of
``correct``; the known sets ship inside the package."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import anyio
import pytest

from thinkloop.backends.scripted import ScriptedBackend
from thinkloop.bench.datasets import Dataset, Problem, load_dataset, shipped_data_dir
from thinkloop.bench.runner import make_configs, run_benchmark
from thinkloop.bench.store import Record, read_records
from thinkloop.exceptions import DatasetError
from thinkloop.runtime.result import Candidate
from thinkloop.types import ChatRequest
from thinkloop.verifiers.spec import verifier_from_check

ROOT = Path(__file__).parent.parent


def generator() -> ModuleType:
    path = ROOT / "scripts" / "make_verifiable_tasks.py"
    spec = importlib.util.spec_from_file_location("make_verifiable_tasks", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_set_is_what_the_seeded_script_writes(tmp_path: Path) -> None:
    out = tmp_path / "tasks.jsonl"
    assert generator().main(["--out", str(out)]) == 0
    assert out.read_bytes() == (shipped_data_dir() / "verifiable" / "test.jsonl").read_bytes()


def test_hundreds_of_tasks_over_six_families_each_with_a_check() -> None:
    dataset = load_dataset("verifiable")
    families = Counter(p.id.rpartition("-")[0] for p in dataset)
    assert families == {f: 60 for f in ("words", "constraints", "game24", "sumproduct", "code", "ph")}
    assert len({p.question for p in dataset}) == len(dataset)
    for problem in dataset:
        assert problem.check is not None
        verifier_from_check(problem.check)  # every check builds


def test_every_reference_answer_passes_its_own_check() -> None:
    dataset = load_dataset("verifiable")
    by_family: dict[str, list[Problem]] = {}
    for problem in dataset:
        by_family.setdefault(problem.id.rpartition("-")[0], []).append(problem)
    chosen = by_family["game24"] + by_family["sumproduct"] + by_family["ph"]

    async def check_all() -> list[bool]:
        results = []
        for problem in chosen:
            verdict = await verifier_from_check(problem.check).verify(  # type: ignore[arg-type]
                problem.question, Candidate(text=f"Answer: {problem.answer}")
            )
            results.append(verdict.accepted)
        return results

    assert all(anyio.run(check_all))


def test_code_references_pass_their_tests_in_the_sandbox() -> None:
    from thinkloop.exceptions import SandboxUnavailable

    code = [p for p in load_dataset("verifiable-code")][:3]

    async def check(problem: Problem) -> bool:
        verifier = verifier_from_check(problem.check)  # type: ignore[arg-type]
        text = f"```python\n{problem.answer}\n```"
        return (await verifier.verify(problem.question, Candidate(text=text))).accepted

    try:
        assert all(anyio.run(check, p) for p in code)
    except SandboxUnavailable:
        pytest.skip("no network namespace for the sandbox here")


def test_a_family_by_name_and_an_unknown_family() -> None:
    words = load_dataset("verifiable-words", limit=5)
    assert words.name == "verifiable-words" and len(words) == 5
    assert all(p.id.startswith("words-") and p.check and p.check["kind"] == "words" for p in words)
    with pytest.raises(DatasetError, match="no 'poems' family; families: code, constraints, game24, ph"):
        load_dataset("verifiable-poems")


def test_known_sets_load_from_the_package_when_no_folder_has_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("THINKLOOP_DATA", str(tmp_path))  # an empty folder: nothing there
    for name, rows in (("gsm8k", 1319), ("math500", 500), ("svamp", 1000)):
        dataset = load_dataset(name)
        assert dataset.path == shipped_data_dir() / name / "test.jsonl" and len(dataset) == rows
        assert (shipped_data_dir() / name / "LICENSE").read_text().count("MIT License") >= 1
    assert load_dataset("gsm8k", limit=1).problems[0].answer == "18"
    with pytest.raises(DatasetError, match="the gsm8k data set is not there"):
        load_dataset("gsm8k", data_dir=tmp_path)  # an explicit folder is never silently replaced


def sentence(request: ChatRequest) -> str:
    question = next(m.content for m in request.messages if m.role == "user")
    if "exactly 3 words" in question:
        feedback = [m.content for m in request.messages if m.role == "user"][1:]
        return "The sea is calm." if not feedback else "The sea shines."
    return "Answer: 7"


@pytest.mark.anyio
async def test_the_harness_judges_by_each_problems_check(tmp_path: Path) -> None:
    problems = (
        Problem(
            id="words-001",
            question="Write one sentence in exactly 3 words.",
            answer="3 words",
            check={"kind": "words", "n": 3},
        ),
        Problem(
            id="ph-001",
            question="pH of 1e-7 M HCl?",
            answer="7.00",
            check={"kind": "number", "value": 7.0, "tolerance": 0.05},
        ),
    )
    data = Dataset(name="verifiable", path=Path("v.jsonl"), problems=problems)
    out = tmp_path / "r.jsonl"
    await run_benchmark([data], ["direct", "cot:max_rounds=2", "sc:n=3"], [ScriptedBackend(sentence)], out)
    records = {(r.strategy, r.id): r for r in read_records(out)}
    assert records[("direct", "words-001")].correct is False  # 4 words: the check, not the gold text, decides
    assert records[("cot:max_rounds=2", "words-001")].correct is True  # re-prompted with the counter's feedback
    assert records[("cot:max_rounds=2", "words-001")].calls == 2
    assert records[("direct", "ph-001")].correct is True
    assert records[("sc:n=3", "ph-001")].correct is True  # a vote the strategy never checked is checked here
    assert records[("sc:n=3", "words-001")].correct is False


@pytest.mark.anyio
async def test_a_check_for_the_whole_set_fills_in_each_gold_answer(tmp_path: Path) -> None:
    problems = (Problem(id="a", question="q1", answer="7"), Problem(id="b", question="q2", answer="9"))
    data = Dataset(name="toy", path=Path("t.jsonl"), problems=problems)
    out = tmp_path / "r.jsonl"
    await run_benchmark([data], ["direct"], [ScriptedBackend(lambda r: "Answer: 7.3")], out)
    plain = {r.id: r.correct for r in read_records(out)}
    configs = make_configs([data], ["direct"], [ScriptedBackend(lambda r: "Answer: 7.3")], check="number:{answer}+-0.5")
    assert configs[0].id == "toy | direct | scripted | check=number:{answer}+-0.5"
    from thinkloop.bench.runner import Runner
    from thinkloop.bench.store import ResultStore

    with ResultStore(out) as store:
        await Runner(store).run(configs)
    checked = {r.id: r.correct for r in read_records(out) if "check=" in r.config}
    assert plain == {"a": False, "b": False} and checked == {"a": True, "b": False}


def test_bench_help_says_where_each_known_set_comes_from(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from thinkloop.cli import main

    monkeypatch.setenv("COLUMNS", "1000")  # no line breaks inside the names
    with pytest.raises(SystemExit):
        main(["bench", "run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for source in (
        "openai/grade-school-math",
        "openai/prm800k",
        "arkilpatel/SVAMP",
        "make_verifiable_tasks.py",
        "--check CHECK",
    ):
        assert source in text


def table_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("verifiable_table", ROOT / "benchmarks" / "verifiable_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def record(strategy: str, task: str, correct: bool, tokens: int, family: str = "words") -> Record:
    return Record(
        config=f"verifiable-{family} | {strategy} | m",
        strategy=strategy,
        model="m",
        dataset=f"verifiable-{family}",
        id=task,
        status="done",
        gold="-",
        correct=correct,
        prompt_tokens=tokens,
        completion_tokens=0,
        calls=tokens // 100,
    )


def test_the_table_compares_loops_with_one_call_on_the_same_tasks() -> None:
    table = table_module()
    records = [record("direct", f"t{i}", i == 0, 100) for i in range(10)]
    records += [record("cot", f"t{i}", False, 150) for i in range(10)]  # the worse single call is not the bar
    records += [record("critique:max_rounds=3", f"t{i}", i < 4, 300) for i in range(10)]  # +30 points at 3x
    records += [record("bon:n=8", f"t{i}", i < 5, 900) for i in range(10)]  # +40 points at 9x: too dear
    records += [record("bon:n=4", f"t{i}", True, 400) for i in range(5)]  # half done: compared on t0..t4 only
    rows = table.rows_by_family(records)
    assert {r.strategy: (r.n, r.correct) for r in rows["words"]} == {
        "direct": (10, 1),
        "cot": (10, 0),
        "critique:max_rounds=3": (10, 4),
        "bon:n=8": (10, 5),
        "bon:n=4": (5, 5),
    }
    text = table.render(rows)
    assert "| words | direct | 10 | 10% [2, 40] | 100 | 1.0 |  |  |  | (baseline) |" in text
    assert "| words | bon:n=8 | 10 | 50% [24, 76] | 900 | 9.0 | 10% | +40 | 9.0x | no |" in text
    assert "| words | critique:max_rounds=3 | 10 | 40% [17, 69] | 300 | 3.0 | 10% | +30 | 3.0x | yes |" in text
    # bon:n=4 ran the first 5 tasks only: it is compared with the single call on those 5 (1 of 5 right)
    assert "| words | bon:n=4 | 5 | 100% [57, 100] | 400 | 4.0 | 20% | +80 | 4.0x | yes |" in text
    assert text.endswith("at <= 8x the tokens: 1 of 1 (words).\n")


def test_the_committed_verifiable_table_regenerates_from_the_committed_results(tmp_path: Path) -> None:
    results = ROOT / "benchmarks" / "results" / "verifiable"
    assert (results / "results.jsonl").is_file(), "the measured results are missing"
    assert table_module().main([str(results / "results.jsonl"), "--out", str(tmp_path), "--no-plot"]) == 0
    table = (tmp_path / "table.md").read_text()
    assert table == (results / "table.md").read_text()
    assert table.strip() in (ROOT / "benchmarks" / "README.md").read_text()  # the README shows the same table
    assert (results / "plots" / "verifiable-success-vs-tokens.png").is_file()
