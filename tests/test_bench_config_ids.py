"""A config id names everything that changes a result, the server included."""

from __future__ import annotations

from pathlib import Path

from thinkloop import OpenAIBackend, ScriptedBackend
from thinkloop.bench.datasets import Dataset, Problem
from thinkloop.bench.runner import make_configs

DATA = Dataset(name="tiny", path=Path("tiny.jsonl"), problems=(Problem(id="1", question="q", answer="1"),))


def test_the_same_model_on_two_servers_is_two_configs() -> None:
    backends = [
        OpenAIBackend("qwen", base_url="http://127.0.0.1:8001/v1"),
        OpenAIBackend("qwen", base_url="http://127.0.0.1:8002/v1"),
    ]
    ids = [c.id for c in make_configs([DATA], ["cot"], backends)]
    assert len(set(ids)) == 2
    assert ids[0].endswith("qwen@127.0.0.1:8001/v1")


def test_local_and_official_backends_keep_the_bare_model_name() -> None:
    backends = [
        ScriptedBackend(["x"], name="scripted"),
        OpenAIBackend("o1-mini", api_key="k", base_url="https://api.openai.com/v1"),
    ]
    ids = [c.id for c in make_configs([DATA], ["direct"], backends)]
    assert [i.rsplit(" | ", 1)[-1] for i in ids] == ["scripted", "o1-mini"]


def test_an_inner_strategy_is_part_of_the_config_and_plain_ids_are_unchanged() -> None:
    backend = ScriptedBackend(["x"], name="scripted")
    plain, nested, deeper = make_configs(
        [DATA], ["sc:n=5", "sc:n=5,inner=cot", 'sc:n=5,inner="cot:max_rounds=2"'], [backend]
    )
    assert plain.id == "tiny | sc:n=5 | scripted"  # ids stored before inner= existed still resume
    assert nested.id == 'tiny | sc:inner="cot",n=5 | scripted'
    assert len({plain.id, nested.id, deeper.id}) == 3
    assert len({plain.settings, nested.settings, deeper.settings}) == 3


def test_the_committed_results_still_resume_under_todays_ids_and_settings() -> None:
    from thinkloop.bench.store import read_records

    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "embedded" / "results.jsonl"
    stored: dict[tuple[str, str], set[tuple[str, str | None]]] = {}
    for record in read_records(results):
        stored.setdefault((record.dataset, record.strategy), set()).add((record.config, record.settings))
    backend = ScriptedBackend(["x"], name="SmolLM2-135M-Instruct")
    for (dataset, spec), seen in stored.items():
        data = Dataset(name=dataset, path=Path("x"), problems=DATA.problems)
        (config,) = make_configs([data], [spec], [backend], max_tokens=192)  # run_embedded.sh's --max-tokens
        # records from before fingerprints existed (None) resume too
        assert seen <= {(config.id, config.settings), (config.id, None)}, spec
