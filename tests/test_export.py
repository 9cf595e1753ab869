"""``thinkloop export``: verified traces become training data, and nothing unverified, cut or failed does."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from thinkloop import Budget, Engine
from thinkloop.backends.scripted import ScriptedBackend
from thinkloop.cli import main as cli_main
from thinkloop.exceptions import BackendError
from thinkloop.export import SCHEMAS, ExportError, ExportOptions, Reply, Verdict, export_traces, provenance_path
from thinkloop.export.export import ExportReport, _records
from thinkloop.strategies.registry import build_strategy
from thinkloop.types import ChatRequest, Choice
from thinkloop.verifiers import MathAnswerVerifier

QUESTION = "What is 40 + 2?"


def _run(
    tmp: Path, name: str, replies, spec: str = "cot:max_rounds=3", *, verifier=True, budget: Budget | None = None
) -> Path:
    """One run of ``spec`` on scripted replies, traced to ``tmp/name.jsonl``."""
    path = tmp / f"{name}.jsonl"
    backend = ScriptedBackend(replies)

    async def go() -> None:
        await Engine(backend).run(
            build_strategy(spec),
            QUESTION,
            trace_path=path,
            budget=budget,
            verifier=MathAnswerVerifier("42") if verifier else None,
        )

    anyio.run(go)
    return path


@pytest.fixture
def traces(tmp_path: Path) -> Path:
    """Traces holding every kind of reply: rejected then accepted, cut off, failed, budget-stopped, unchecked."""
    folder = tmp_path / "traces"
    folder.mkdir()
    _run(folder, "accepted", ["I think 41. Answer: 41", "40 + 2 = 42. Answer: 42"])
    _run(
        folder,
        "cut",
        [
            Choice(text="Let me add them. Answer: 4", finish_reason="length"),
            Choice(text="Answer: 43", finish_reason="stop"),
            "Answer: 44",
        ],
    )

    def broken(request: ChatRequest) -> str:
        raise BackendError("upstream exploded", retryable=False)

    _run(folder, "failed", broken)
    _run(folder, "budget", ["Answer: 42 " + "word " * 40], budget=Budget(tokens=20))
    _run(folder, "unchecked", ["Answer: 42"], spec="cot", verifier=False)
    return folder


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_sft_formats_export_only_the_accepted_reply(traces: Path, tmp_path: Path) -> None:
    out = tmp_path / "openai.jsonl"
    report = export_traces([traces], out, ExportOptions(format="openai-sft"))
    assert _lines(out) == [
        {
            "messages": [
                {"role": "user", "content": QUESTION},
                {"role": "assistant", "content": "40 + 2 = 42. Answer: 42"},
            ]
        }
    ]
    assert report.records == 1
    # every reply is accounted for: the accepted one, the three rejected, and why the rest were left out
    assert report.good == 1 and report.bad == 3
    assert report.left_out["cut off"] == 1
    assert report.left_out["failed"] >= 1
    assert report.left_out["unchecked"] == 1
    assert report.good + report.bad + sum(report.left_out.values()) == report.replies
    provenance = _lines(provenance_path(out))
    assert len(provenance) == 1
    assert provenance[0]["verdict"]["accepted"] is True
    assert provenance[0]["answer"] == "42" and provenance[0]["trace"].endswith("accepted.jsonl")
    assert isinstance(provenance[0]["node_id"], int) and provenance[0]["run_id"]

    hf = tmp_path / "hf.jsonl"
    export_traces([traces], hf, ExportOptions(format="hf-sft"))
    assert _lines(hf) == _lines(out)


def test_the_conversation_as_sent_trains_only_the_last_reply(traces: Path, tmp_path: Path) -> None:
    out = tmp_path / "sent.jsonl"
    export_traces([traces / "accepted.jsonl"], out, ExportOptions(format="openai-sft", prompt="sent"))
    [record] = _lines(out)
    messages = record["messages"]
    assert messages[-1] == {"role": "assistant", "content": "40 + 2 = 42. Answer: 42"}
    earlier = [m for m in messages[:-1] if m["role"] == "assistant"]
    assert earlier == [{"role": "assistant", "content": "I think 41. Answer: 41", "weight": 0}]
    assert any(m["role"] == "user" and "not correct" in m["content"] for m in messages)  # the check's feedback
    SCHEMAS["openai-sft"].model_validate(record)


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        (
            "trl-dpo",
            {
                "prompt": [{"role": "user", "content": QUESTION}],
                "chosen": [{"role": "assistant", "content": "40 + 2 = 42. Answer: 42"}],
                "rejected": [{"role": "assistant", "content": "I think 41. Answer: 41"}],
            },
        ),
        (
            "openai-dpo",
            {
                "input": {"messages": [{"role": "user", "content": QUESTION}]},
                "preferred_output": [{"role": "assistant", "content": "40 + 2 = 42. Answer: 42"}],
                "non_preferred_output": [{"role": "assistant", "content": "I think 41. Answer: 41"}],
            },
        ),
    ],
)
def test_preference_pairs_put_a_rejected_sibling_against_the_accepted_reply(
    traces: Path, tmp_path: Path, fmt: str, expected: dict
) -> None:
    out = tmp_path / f"{fmt}.jsonl"
    export_traces([traces / "accepted.jsonl"], out, ExportOptions(format=fmt))
    assert _lines(out) == [expected]
    [provenance] = _lines(provenance_path(out))
    assert provenance["chosen"]["verdict"]["accepted"] is True
    assert provenance["rejected"]["verdict"]["accepted"] is False
    assert "not correct" in provenance["rejected"]["verdict"]["feedback"]


def test_a_cut_off_reply_with_the_right_answer_is_never_good(tmp_path: Path) -> None:
    # a reply cut by its token limit may end mid-number: even when it matches the gold it is not exported
    trace = _run(tmp_path, "cut", [Choice(text="Answer: 42", finish_reason="length"), "Answer: 7", "Answer: 8"])
    results = tmp_path / "results.jsonl"
    results.write_text(json.dumps({"id": "p1", "gold": "42", "trace": str(trace)}) + "\n")
    report = export_traces(
        [trace], tmp_path / "out.jsonl", ExportOptions(format="openai-sft", keep="correct", results=results)
    )
    assert report.records == 0
    assert report.left_out["cut off"] == 1


def test_keep_correct_judges_against_the_bench_gold(tmp_path: Path) -> None:
    trace = _run(tmp_path, "unchecked", lambda request: "Answer: 42", spec="sc:n=3", verifier=False)
    results = tmp_path / "results.jsonl"
    results.write_text(json.dumps({"config": "c", "id": "p1", "gold": "42", "trace": str(trace)}) + "\n")
    out = tmp_path / "out.jsonl"
    with pytest.raises(ExportError, match="--results"):
        export_traces([trace], out, ExportOptions(format="openai-sft", keep="correct"))
    report = export_traces([trace], out, ExportOptions(format="openai-sft", keep="correct", results=results))
    # three equal samples: one record after deduplication, with the gold in its provenance
    assert report.records == 1 and report.dropped["duplicate"] == 2
    [provenance] = _lines(provenance_path(out))
    assert provenance["gold"] == "42" and provenance["correct"] is True and provenance["problem"] == "p1"
    report = export_traces(
        [trace], out, ExportOptions(format="openai-sft", keep="correct", results=results, dedupe=False, per_question=2)
    )
    assert report.records == 2 and report.dropped["over per_question"] == 1


def test_a_trace_that_cannot_be_read_whole_is_refused(traces: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    torn = tmp_path / "torn.jsonl"
    torn.write_bytes((traces / "accepted.jsonl").read_bytes()[:-10])
    with pytest.raises(ExportError, match="incomplete"):
        export_traces([torn], out, ExportOptions(format="openai-sft"))
    unfinished = tmp_path / "unfinished.jsonl"
    lines = (traces / "accepted.jsonl").read_text().splitlines(keepends=True)
    unfinished.write_text("".join(line for line in lines if '"run_finished"' not in line))
    with pytest.raises(ExportError, match="no run_finished"):
        export_traces([unfinished], out, ExportOptions(format="openai-sft"))
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text('{"kind": "node"}\n')
    with pytest.raises(ExportError, match=r"garbage\.jsonl:1: not a trace event"):
        export_traces([garbage], out, ExportOptions(format="openai-sft"))
    assert not out.exists()  # nothing written when any trace was refused


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (ExportOptions(format="jsonl"), "unknown export format"),
        (ExportOptions(format="openai-sft", thinking=True), "no place for the model's thinking"),
        (ExportOptions(format="openai-sft", keep="passed+correct"), "--results"),
        (ExportOptions(format="openai-sft", per_question=0), "per_question"),
    ],
)
def test_options_that_cannot_work_are_one_clear_error(traces: Path, tmp_path: Path, options, message) -> None:
    with pytest.raises(ExportError, match=message):
        export_traces([traces], tmp_path / "out.jsonl", options)


def test_thinking_rides_on_the_assistant_message(tmp_path: Path) -> None:
    trace = _run(tmp_path, "thinking", [Choice(text="Answer: 42", reasoning="40 plus 2 is 42.", finish_reason="stop")])
    out = tmp_path / "out.jsonl"
    export_traces([trace], out, ExportOptions(format="hf-sft", thinking=True))
    assert _lines(out)[0]["messages"][-1] == {
        "role": "assistant",
        "content": "Answer: 42",
        "reasoning_content": "40 plus 2 is 42.",
    }


@pytest.mark.parametrize(
    ("fmt", "record"),
    [
        ("openai-sft", {"messages": [{"role": "user", "content": "q"}]}),
        (
            "openai-sft",
            {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "run_id": "x"},
        ),
        (
            "openai-sft",
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "a", "reasoning_content": "t"},
                ]
            },
        ),
        ("hf-sft", {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]}),
        (
            "trl-dpo",
            {
                "prompt": [{"role": "user", "content": "q"}],
                "chosen": [{"role": "assistant", "content": "a"}],
                "rejected": [{"role": "assistant", "content": "a"}],
            },
        ),
        (
            "openai-dpo",
            {
                "input": {"messages": [{"role": "assistant", "content": "q"}]},
                "preferred_output": [{"role": "assistant", "content": "a"}],
                "non_preferred_output": [{"role": "assistant", "content": "b"}],
            },
        ),
    ],
)
def test_the_schemas_refuse_what_a_trainer_would(fmt: str, record: dict) -> None:
    with pytest.raises(ValueError):
        SCHEMAS[fmt].model_validate(record)


def test_the_command_line(traces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "train.jsonl"
    assert cli_main(["export", str(traces), "--format", "trl-dpo", "-o", str(out)]) == 0
    # the accepted reply against each rejected reply to the same question, from every run
    assert "3 records to" in capsys.readouterr().out
    assert sorted(line["rejected"][0]["content"] for line in _lines(out)) == [
        "Answer: 43",
        "Answer: 44",
        "I think 41. Answer: 41",
    ]
    assert cli_main(["export", str(tmp_path / "missing"), "--format", "hf-sft", "-o", str(out)]) == 1
    assert "no such trace file" in capsys.readouterr().err
    assert cli_main(["export", str(traces / "unchecked.jsonl"), "--format", "hf-sft", "-o", str(out)]) == 1
    assert "nothing to export" in capsys.readouterr().err


@pytest.mark.integration
def test_a_real_bench_run_of_the_embedded_model_exports_whole(tmp_path: Path) -> None:
    """``bench run --traces`` on the shipped verifiable set with SmolLM2, then every format from its traces."""
    traces, results = tmp_path / "traces", tmp_path / "results.jsonl"
    assert (
        cli_main(
            [
                "bench",
                "run",
                "verifiable-words",
                "--limit",
                "2",
                "--strategy",
                "bon:n=4",
                "--max-tokens",
                "32",
                "--out",
                str(results),
                "--traces",
                str(traces),
                "--quiet",
            ]
        )
        == 0
    )
    for fmt in ("openai-sft", "hf-sft", "trl-dpo", "openai-dpo"):
        out = tmp_path / f"{fmt}.jsonl"
        report = export_traces([traces], out, ExportOptions(format=fmt, keep="passed", results=results))
        assert (report.traces, report.runs, report.replies) == (2, 2, 8)  # two problems, four samples each
        assert report.good + report.bad + sum(report.left_out.values()) == report.replies
        records, provenance = _lines(out), _lines(provenance_path(out))
        assert len(records) == len(provenance) == report.records
        for record, origin in zip(records, provenance, strict=True):
            SCHEMAS[fmt].model_validate(record)
            chosen = origin.get("chosen", origin)
            assert chosen["verdict"]["accepted"] is True and chosen["gold"] is not None
            if "rejected" in origin:
                assert origin["rejected"]["verdict"]["accepted"] is False
                assert origin["rejected"]["question"] == chosen["question"]


_REPLY = st.builds(
    lambda question, text, accepted, usable, correct: Reply(
        trace="t.jsonl",
        run_id="r",
        node_id=0,
        question=question,
        strategy="cot",
        model="m",
        messages=(),
        text=text,
        answer=None,
        reasoning=None,
        finish_reason="stop" if usable else "length",
        status="done",
        verdict=Verdict(accepted=accepted),
        usable=usable,
        why=None if usable else "cut off",
        gold="g",
        correct=correct,
    ),
    st.sampled_from(["q1", "q2"]),
    st.sampled_from(["a", "b", "c"]),
    st.sampled_from([True, False, None]),
    st.booleans(),
    st.sampled_from([True, False, None]),
)


@given(
    replies=st.lists(_REPLY, max_size=12),
    fmt=st.sampled_from(["openai-sft", "trl-dpo"]),
    keep=st.sampled_from(["passed", "correct", "passed+correct"]),
)
def test_only_usable_replies_that_pass_every_test_asked_for_are_ever_exported_as_good(replies, fmt, keep) -> None:
    report = ExportReport(output=Path("o"), provenance=Path("p"), replies=len(replies))
    written = list(_records(replies, ExportOptions(format=fmt, keep=keep, results=Path("r")), report))
    assert report.good + report.bad + sum(report.left_out.values()) == len(replies)
    for _, origin in written:
        chosen = origin.get("chosen", origin)
        if "passed" in keep:
            assert chosen["verdict"]["accepted"] is True
        if "correct" in keep:
            assert chosen["correct"] is True
        if "rejected" in origin:
            rejected = origin["rejected"]
            assert rejected["question"] == chosen["question"]
            assert rejected["verdict"]["accepted"] is False or rejected["correct"] is False
    tests = [lambda r: r.verdict.accepted] * ("passed" in keep) + [lambda r: r.correct] * ("correct" in keep)
    good = [r for r in replies if r.usable and all(test(r) is True for test in tests)]
    assert len(written) <= (len(good) if fmt == "openai-sft" else len(good) * len(replies))
