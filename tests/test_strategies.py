"""Behaviour of each strategy on scripted backends whose right answers are known exactly."""

from __future__ import annotations

import itertools
import re

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import TREE, VALUE
from thinkloop import Budget, Capabilities, ConfigurationError, ScriptedBackend, Verdict
from thinkloop.runtime.result import Candidate
from thinkloop.strategies.best_of_n import BestOfN
from thinkloop.strategies.cot import ChainOfThought, Direct
from thinkloop.strategies.critique import CRITIC_SYSTEM, CritiqueRevise
from thinkloop.strategies.registry import build_strategy
from thinkloop.strategies.self_consistency import SelfConsistency
from thinkloop.strategies.tree_search import TreeSearch
from thinkloop.strategies.vote import beta_confidence, majority_vote

SEQUENTIAL = Capabilities(honours_n=False, prompt_overhead_tokens=0)


def answers_in_order(answers: list[str], **kwargs: object) -> ScriptedBackend:
    """A backend that replies with the given answers, one per call, in order."""
    replies = iter(answers)
    return ScriptedBackend(lambda request: f"Let me think. Answer: {next(replies)}", **kwargs)


class ExactAnswer:
    """Accepts a candidate whose answer equals ``expected`` (score 1), else rejects it with feedback."""

    def __init__(self, expected: str) -> None:
        self.expected = expected
        self.calls = 0

    async def verify(self, question: str, candidate: Candidate, ctx: object = None) -> Verdict:
        self.calls += 1
        if candidate.answer == self.expected:
            return Verdict.accept()
        return Verdict.reject(f"{candidate.answer} is wrong", score=0.2)


# --- self-consistency ------------------------------------------------------------------------------------


def test_self_consistency_returns_the_majority_with_one_request_when_n_is_honoured() -> None:
    backend = answers_in_order(["5", "3", "5", "7", "5", "3", "5", "5"])
    result = SelfConsistency(n=8).run_sync("q", backend=backend)
    assert result.answer == "5"
    assert result.data["votes"] == {"5": 5, "3": 2, "7": 1}
    assert len(backend.requests) == 1 and backend.requests[0].n == 8
    assert result.stop_reason == "completed"
    assert [n.kind for n in result.answer_path()] == ["question", "generate", "generate", "vote"]


def test_self_consistency_sends_concurrent_requests_when_n_is_ignored() -> None:
    backend = answers_in_order(["1", "2", "2", "2"], capabilities=SEQUENTIAL, latency=0.01)
    result = SelfConsistency(n=4).run_sync("q", backend=backend)
    assert result.answer == "2"
    assert len(backend.requests) == 4 and all(r.n == 1 for r in backend.requests)
    assert backend.max_in_flight == 4


def test_self_consistency_tops_up_when_the_server_returns_fewer_choices() -> None:
    """llama.cpp's server and Ollama ignore n: count what came back and top up."""
    backend = answers_in_order(["4"] * 8, capabilities=Capabilities(honours_n=False, prompt_overhead_tokens=0))
    # Advertise n support that the server does not deliver: the engine must notice.
    backend._capabilities = Capabilities(honours_n=True, prompt_overhead_tokens=0)
    original = backend.complete

    async def one_choice_only(request):  # type: ignore[no-untyped-def]
        return await original(request.model_copy(update={"n": 1}))

    backend.complete = one_choice_only  # type: ignore[method-assign]
    result = SelfConsistency(n=5).run_sync("q", backend=backend)
    assert result.data["samples"] == 5
    assert any("returned 1 of 5 choices" in note for note in result.notes)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.permutations(["12", "12", "12", "7", "7", "3", "3,000", "3000"]))
def test_self_consistency_is_invariant_under_sample_order(order: list[str]) -> None:
    result = SelfConsistency(n=8).run_sync("q", backend=answers_in_order(order))
    assert result.answer == "12"
    assert result.data["votes"]["12"] == 3


@given(st.lists(st.sampled_from(["1", "2", "3", "4"]), min_size=1, max_size=9), st.randoms())
def test_vote_is_order_independent_including_ties(answers: list[str], rng) -> None:  # type: ignore[no-untyped-def]
    candidates = [Candidate(text=f"t{i}", answer=a) for i, a in enumerate(answers)]
    shuffled = candidates[:]
    rng.shuffle(shuffled)
    first, second = majority_vote(candidates), majority_vote(shuffled)
    assert first.winner.representative == second.winner.representative
    assert first.counts() == second.counts()


def test_vote_keeps_single_letter_answers() -> None:
    """Normalisers that strip articles turn the answer "A" into nothing; the vote must keep it."""
    tally = majority_vote(
        [Candidate(text="x", answer="A"), Candidate(text="y", answer="A"), Candidate(text="z", answer="B")]
    )
    assert tally.winner.representative == "A" and tally.winner.votes == 2


def test_beta_confidence_matches_its_closed_form() -> None:
    tally = majority_vote([Candidate(text=str(i), answer="5") for i in range(4)])
    assert beta_confidence(tally) == pytest.approx(1 - 0.5**5)


def test_adaptive_self_consistency_stops_early_when_the_first_answers_agree() -> None:
    backend = answers_in_order(["9"] * 8, capabilities=SEQUENTIAL)
    result = SelfConsistency(n=8, adaptive=True).run_sync("q", backend=backend)
    assert result.answer == "9"
    assert result.stop_reason == "converged"
    assert result.data["samples"] < 8
    assert len(backend.requests) < 8


def test_adaptive_self_consistency_batches_rounds_into_n_requests_where_n_is_honoured() -> None:
    backend = answers_in_order(["9"] * 8)
    result = SelfConsistency(n=8, adaptive=True).run_sync("q", backend=backend)
    assert result.stop_reason == "converged"
    assert [r.n for r in backend.requests] == [4]
    assert result.data["samples"] == 4


def test_adaptive_rounds_draw_all_n_when_answers_disagree() -> None:
    backend = answers_in_order([str(i) for i in range(8)])
    result = SelfConsistency(n=8, adaptive=True).run_sync("q", backend=backend)
    assert [r.n for r in backend.requests] == [4, 2, 2]
    assert result.data["samples"] == 8 and result.stop_reason == "completed"


def test_adaptive_self_consistency_draws_all_n_when_answers_disagree() -> None:
    backend = answers_in_order([str(i) for i in range(8)], capabilities=SEQUENTIAL)
    result = SelfConsistency(n=8, adaptive=True).run_sync("q", backend=backend)
    assert result.data["samples"] == 8
    assert result.stop_reason == "completed"


def test_adaptive_self_consistency_cancels_the_samples_in_flight() -> None:
    backend = answers_in_order(["9"] * 8, capabilities=SEQUENTIAL, latency=0.01)
    result = SelfConsistency(n=8, adaptive=True, parallel=3).run_sync("q", backend=backend)
    assert result.stop_reason == "converged"
    cancelled = result.graph.by_status("cancelled")
    assert len(cancelled) >= 1
    generated = [n for n in result.graph.nodes() if n.kind == "generate"]
    late = [n for n in generated if n.status == "pruned"]  # landed in the instant the vote was decided
    assert result.data["samples"] < 8
    assert len(generated) == result.data["samples"] + len(cancelled) + len(late) <= 8
    assert not result.graph.by_status("running")


# --- best-of-n ---------------------------------------------------------------------------------------------


def test_best_of_n_returns_the_top_scored_candidate() -> None:
    backend = answers_in_order(["3", "9", "4", "1"], capabilities=SEQUENTIAL)
    result = BestOfN(n=4, reward=lambda q, c: int(c.answer) / 10).run_sync("q", backend=backend)
    assert result.answer == "9"
    assert result.candidate.score == pytest.approx(0.9)
    assert result.answer_path()[-1].kind == "select"


def test_best_of_n_stops_early_when_one_is_accepted() -> None:
    backend = answers_in_order(["1", "42", "2", "3", "4", "5"], capabilities=SEQUENTIAL, latency=0.01)
    verifier = ExactAnswer("42")

    async def main():  # type: ignore[no-untyped-def]
        return await BestOfN(n=6, temperature=0.0).run("q", backend=backend, verifier=verifier)

    result = anyio.run(main)
    assert result.answer == "42" and result.stop_reason == "accepted"


def test_best_of_n_uses_an_llm_judge_by_default() -> None:
    def reply(request):  # type: ignore[no-untyped-def]
        prompt = request.messages[-1].content
        if "VERDICT" in request.messages[0].content or "VERDICT" in prompt:
            return "VERDICT: CORRECT" if "Answer: 8" in prompt else "VERDICT: INCORRECT"
        return "Answer: 8" if request.messages[-1].content.endswith("q8") else "Answer: 7"

    result = BestOfN(n=3).run_sync("q8", backend=ScriptedBackend(reply))
    assert result.answer == "8"
    assert any(n.kind == "verify" for n in result.graph.nodes())


# --- critique and revise -------------------------------------------------------------------------------


def test_critique_revise_stops_at_the_first_accepted_revision() -> None:
    backend = answers_in_order(["1", "2", "3", "4"])
    verifier = ExactAnswer("3")
    result = CritiqueRevise(max_rounds=5).run_sync("q", backend=backend, verifier=verifier)
    assert result.answer == "3" and result.stop_reason == "accepted"
    assert len(backend.requests) == 3  # first answer + two revisions; feedback came from the verifier
    assert result.data["versions"] == 3


def test_critique_revise_returns_the_best_version_not_the_last() -> None:
    class Scores:
        async def verify(self, question, candidate, ctx=None):  # type: ignore[no-untyped-def]
            return Verdict.reject("try again", score={"1": 0.2, "2": 0.9, "3": 0.4}[candidate.answer])

    result = CritiqueRevise(max_rounds=2).run_sync("q", backend=answers_in_order(["1", "2", "3"]), verifier=Scores())
    assert result.answer == "2" and result.stop_reason == "max_rounds"


def test_critique_revise_with_a_model_critic_stops_when_it_finds_nothing() -> None:
    def reply(request):  # type: ignore[no-untyped-def]
        if request.messages[0].content == CRITIC_SYSTEM:
            return "NO ISSUES" if "Answer: 2" in request.messages[-1].content else "Step 1 is wrong."
        return "Answer: 2" if len(request.messages) > 2 else "Answer: 1"

    result = CritiqueRevise(max_rounds=4).run_sync("q", backend=ScriptedBackend(reply))
    assert result.answer == "2" and result.stop_reason == "converged"
    kinds = [n.kind for n in result.graph.nodes()]
    assert kinds.count("critique") == 2 and kinds.count("revise") == 1


# --- tree search -------------------------------------------------------------------------------------------


def tree_backend() -> ScriptedBackend:
    served: dict[str, itertools.count] = {}

    def reply(request):  # type: ignore[no-untyped-def]
        steps = re.findall(r"Step \d+: (.*)", request.messages[-1].content)
        state = steps[-1] if steps else ""
        options = TREE.get(state, ["Answer: 0"])
        index = next(served.setdefault(state, itertools.count()))
        return options[index % len(options)]

    return ScriptedBackend(reply, capabilities=SEQUENTIAL)


class MakesTwentyFour:
    """Exact verifier: the final expression uses 1 2 3 4 once each and equals 24."""

    async def verify(self, question, candidate, ctx=None):  # type: ignore[no-untyped-def]
        expression = candidate.text.rsplit("Answer:", 1)[-1].strip()
        digits = sorted(re.findall(r"\d", expression))
        ok = digits == ["1", "2", "3", "4"] and eval(expression, {"__builtins__": {}}) == 24
        return Verdict.accept() if ok else Verdict.reject("does not make 24")


def value(question: str, steps: tuple[str, ...]) -> float:
    return VALUE.get(steps[-1], 0.5)


def test_dfs_backtracks_out_of_dead_subtrees_and_finds_the_accepted_leaf() -> None:
    strategy = TreeSearch(mode="dfs", branching=4, max_depth=4, value_fn=value)
    result = strategy.run_sync("Make 24 from 1 2 3 4", backend=tree_backend(), verifier=MakesTwentyFour())
    assert result.stop_reason == "accepted"
    assert result.text.endswith("Answer: 2 * 3 * 4 * 1")
    backtracks = [n for n in result.graph.nodes() if n.kind == "backtrack"]
    assert len(backtracks) >= 2  # out of the "1 + 2" and "4 - 1" subtrees
    assert any(n.text == "4 / 4 = 1 (left: 1 1 2)" for n in result.graph.pruned())
    path_texts = [n.text for n in result.answer_path()]
    assert path_texts[-3:] == ["2 * 3 = 6 (left: 1 4 6)", "6 * 4 = 24 (left: 1 24)", "Answer: 2 * 3 * 4 * 1"]


@pytest.mark.parametrize("stated", ["Answer: 10", "#### 10\nThe answer is: 10", "The answer is 10.", "\\boxed{10}"])
def test_a_thought_that_states_its_answer_ends_its_path(stated: str) -> None:
    # the embedded model writes "The answer is: 10" and "#### 10" as often as "Answer: 10"
    backend = ScriptedBackend(lambda r: stated, capabilities=SEQUENTIAL)
    strategy = TreeSearch(mode="dfs", branching=1, max_depth=4, value_fn=lambda q, steps: 0.9)
    result = strategy.run_sync("q", backend=backend)
    assert result.answer == "10" and result.calls == 1  # one thought, final: no deeper step is asked for
    thinking = TreeSearch(mode="dfs", branching=1, max_depth=3, value_fn=lambda q, steps: 0.9)
    open_ended = thinking.run_sync(
        "q", backend=ScriptedBackend(lambda r: "The answer is not obvious yet", capabilities=SEQUENTIAL)
    )
    assert open_ended.calls == 3  # a thought that only mentions an answer goes on to the depth limit


@pytest.mark.parametrize("width", [1, 2, 3])
def test_beam_search_never_keeps_more_than_the_beam_width_per_depth(width: int) -> None:
    counter = itertools.count()
    backend = ScriptedBackend(lambda r: f"step {next(counter)}", capabilities=SEQUENTIAL)
    strategy = TreeSearch(
        mode="beam",
        branching=3,
        beam_width=width,
        max_depth=3,
        value_fn=lambda q, steps: (hash(steps[-1]) % 100) / 100,
        prune_below=0.0,
    )
    result = strategy.run_sync("q", backend=backend)
    selects = [n for n in result.graph.nodes() if n.kind == "select"]
    assert len(selects) == 3
    assert all(len(n.data["kept"]) <= width for n in selects)
    assert result.stop_reason == "max_rounds"


def test_mcts_visit_counts_add_up() -> None:
    counter = itertools.count()
    backend = ScriptedBackend(lambda r: f"step {next(counter)}", capabilities=SEQUENTIAL)
    strategy = TreeSearch(
        mode="mcts", branching=2, max_depth=3, iterations=12, value_fn=lambda q, steps: (len(steps[-1]) % 7) / 7
    )
    result = strategy.run_sync("q", backend=backend)
    assert result.data["root_visits"] == 12
    graph = result.graph
    thoughts = {n.id: n for n in graph.nodes() if n.data and "visits" in n.data}
    for node in thoughts.values():
        children = [thoughts[c] for c in graph.nx.successors(node.id) if c in thoughts]
        assert node.data["visits"] >= sum(c.data["visits"] for c in children)
    top = [n for n in thoughts.values() if n.parents == (0,)]
    assert sum(n.data["visits"] for n in top) == 12


# --- budgets, composition and configuration --------------------------------------------------------------

STRATEGY_SPECS = [
    "direct",
    "cot",
    "sc:n=4",
    "sc:n=4,adaptive=true",
    "bon:n=3",
    "critique:max_rounds=2",
    "tree:mode=beam,branching=2,max_depth=2",
    "tree:mode=dfs,branching=2,max_depth=2",
    "tree:mode=mcts,branching=2,max_depth=2,iterations=4",
]


def wordy_backend(lengths: list[int]) -> ScriptedBackend:
    sizes = itertools.cycle(lengths or [5])

    def reply(request):  # type: ignore[no-untyped-def]
        if "VERDICT" in request.messages[0].content:
            return "VERDICT: CORRECT"
        if "SCORE" in request.messages[0].content:
            return "SCORE: 7"
        return " ".join(["word"] * next(sizes)) + " Answer: 6"

    return ScriptedBackend(reply, capabilities=SEQUENTIAL)


@pytest.mark.parametrize("spec", STRATEGY_SPECS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tokens=st.integers(min_value=60, max_value=1500),
    calls=st.integers(min_value=1, max_value=12),
    lengths=st.lists(st.integers(min_value=1, max_value=80), min_size=1, max_size=5),
)
def test_every_strategy_honours_the_budget(spec: str, tokens: int, calls: int, lengths: list[int]) -> None:
    strategy = build_strategy(spec, max_tokens=64)
    result = strategy.run_sync("q", backend=wordy_backend(lengths), budget=Budget(tokens=tokens, calls=calls))
    assert result.usage.total_tokens <= tokens
    assert result.usage.calls <= calls
    answered = [
        n
        for n in result.graph.by_status("done")
        if n.kind in ("generate", "revise", "expand") and n.text and "Answer: 6" in n.text
    ]
    if answered:  # a budget stop still returns the best answer found so far
        assert result.answer == "6"


@pytest.mark.parametrize("spec", [s for s in STRATEGY_SPECS if s not in ("direct", "cot")])
def test_a_spent_budget_still_returns_the_best_answer_so_far(spec: str) -> None:
    strategy = build_strategy(spec, max_tokens=64)
    result = strategy.run_sync("q", backend=wordy_backend([3]), budget=Budget(tokens=100_000, calls=1))
    assert result.stop_reason == "budget", result
    assert result.answer is not None


def test_self_consistency_over_critique_revise_shares_budget_and_trace() -> None:
    backend = answers_in_order(["5", "6", "5", "5", "6", "5"], capabilities=SEQUENTIAL)
    verifier = ExactAnswer("5")
    strategy = SelfConsistency(n=3, inner=CritiqueRevise(max_rounds=1))
    result = strategy.run_sync("q", backend=backend, verifier=verifier, budget=Budget(tokens=10_000))
    assert result.answer == "5"
    assert result.strategy == 'sc:inner="critique:max_rounds=1",n=3'  # a spec that builds it again
    assert result.usage.calls == len(backend.requests)
    assert any(n.strategy == "critique" for n in result.graph.nodes())


def test_best_of_n_over_tree_searches() -> None:
    strategy = BestOfN(
        n=2,
        inner=TreeSearch(mode="dfs", branching=4, max_depth=4, value_fn=value),
        reward=lambda q, c: 1.0 if c.accepted else 0.0,
    )
    result = strategy.run_sync("Make 24 from 1 2 3 4", backend=tree_backend(), verifier=MakesTwentyFour())
    assert result.text.endswith("Answer: 2 * 3 * 4 * 1")


@pytest.mark.parametrize(
    ("cls", "options", "message"),
    [
        (SelfConsistency, {"n": 0}, "n: Input should be greater than or equal to 1 (got 0)"),
        (TreeSearch, {"beam_width": 0}, "beam_width: Input should be greater than or equal to 1 (got 0)"),
        (ChainOfThought, {"rounds": 2}, "unknown option 'rounds'"),
        (BestOfN, {"scorer": "reward"}, "scorer='reward' needs reward=<function>"),
        (Direct, {"max_tokens": -1}, "max_tokens: Input should be greater than or equal to 1 (got -1)"),
    ],
)
def test_impossible_options_are_clear_errors_before_any_call(cls, options, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        cls(**options)


def test_registry_builds_strategies_from_specs() -> None:
    strategy = build_strategy("sc:n=5,adaptive=true,temperature=0.3")
    assert isinstance(strategy, SelfConsistency)
    assert (strategy.config.n, strategy.config.adaptive, strategy.config.temperature) == (5, True, 0.3)
    with pytest.raises(ConfigurationError, match="unknown strategy 'nope'"):
        build_strategy("nope")


def test_calls_in_flight_do_not_starve_the_budget_with_their_worst_case() -> None:
    """Eight concurrent samples each reserve 512 tokens they will not use; waiting for the early ones to
    settle lets all eight run inside a budget that holds only three worst cases."""
    backend = answers_in_order(["4"] * 8, capabilities=SEQUENTIAL, latency=0.01)
    result = SelfConsistency(n=8).run_sync("q", backend=backend, budget=Budget(tokens=2_000))
    assert result.data["samples"] == 8
    assert result.stop_reason == "completed"
    assert result.usage.total_tokens <= 2_000


def test_a_dollar_budget_prices_each_model_separately() -> None:
    from thinkloop import Price

    judge = ScriptedBackend(lambda r: "VERDICT: CORRECT", name="pricey-judge")
    from thinkloop.verifiers.judge import LLMJudge

    budget = Budget(dollars=1.0, price=Price(input=1, output=1), prices={"pricey-judge": Price(input=1e3, output=1e3)})
    result = ChainOfThought().run_sync(
        "q", backend=answers_in_order(["3"]), verifier=LLMJudge(backend=judge), budget=budget
    )
    cheap = result.graph.nodes()[1].usage
    assert result.cost is not None and result.cost > (cheap.prompt_tokens + cheap.completion_tokens) / 1e6 * 2
    assert result.cost <= 1.0
    with pytest.raises(ConfigurationError, match="no price for model 'pricey-judge'"):
        ChainOfThought().run_sync(
            "q",
            backend=answers_in_order(["3"]),
            verifier=LLMJudge(backend=judge),
            budget=Budget(dollars=1.0, price=None, prices={"scripted": Price(input=1, output=1)}),
        )


# --- regressions from review: composition, failures and stops keep the right answer ---------------------


class FailingOn:
    """A scripted backend that raises a server error on the given call numbers (1-based)."""

    def __init__(self, answers: list[str], fail_on: set[int]) -> None:
        self.calls = 0
        self.answers = iter(answers)
        self.fail_on = fail_on

    def __call__(self, request):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls in self.fail_on:
            from thinkloop import BackendError

            raise BackendError("503 from the server")
        return f"Answer: {next(self.answers)}"


def test_an_inner_strategy_votes_only_with_its_own_answer() -> None:
    """Two failed inner runs must cast no vote (they used to return the run's best answer as theirs)."""
    script = FailingOn(["7", "5"], fail_on={1, 2})
    backend = ScriptedBackend(script, capabilities=SEQUENTIAL)
    result = SelfConsistency(n=4, inner=Direct(), equivalence="exact").run_sync("q", backend=backend)
    assert sum(result.data["votes"].values()) == 2
    assert any("503" in note for note in result.notes)


def test_one_failed_inner_call_does_not_discard_the_vote() -> None:
    script = FailingOn(["9", "2", "2", "2"], fail_on={3})
    backend = ScriptedBackend(script, capabilities=SEQUENTIAL)
    result = SelfConsistency(n=5, inner=ChainOfThought()).run_sync("q", backend=backend)
    assert result.answer == "2" and result.data["votes"] == {"2": 3, "9": 1}
    assert result.usage.calls == 5 and result.usage.failed_calls == 1


def test_a_deadline_returns_the_vote_over_the_samples_so_far() -> None:
    delays = iter([0.0, 0.0, 0.0, 0.0, 5.0, 5.0, 5.0, 5.0])
    answers = iter(["9", "2", "2", "2"])

    async def reply(request):  # type: ignore[no-untyped-def]
        await anyio.sleep(next(delays))
        return f"Answer: {next(answers)}"

    backend = ScriptedBackend(reply, capabilities=SEQUENTIAL)
    result = SelfConsistency(n=8).run_sync("q", backend=backend, budget=Budget(seconds=0.5))
    assert result.stop_reason == "deadline"
    assert result.answer == "2"


def test_a_failing_user_callback_raises_its_own_error_not_a_group() -> None:
    def reward(question, candidate):  # type: ignore[no-untyped-def]
        raise ValueError("my reward function broke")

    with pytest.raises(ValueError, match="my reward function broke"):
        BestOfN(n=2, reward=reward).run_sync("q", backend=answers_in_order(["1", "2"], capabilities=SEQUENTIAL))


def test_a_critique_that_mentions_no_issues_in_passing_is_not_an_all_clear() -> None:
    def reply(request):  # type: ignore[no-untyped-def]
        if request.messages[0].content == CRITIC_SYSTEM:
            if "Answer: 2" in request.messages[-1].content:
                return "NO ISSUES."
            return "Step 1 has no issues, but step 2 adds wrongly."
        return "Answer: 2" if len(request.messages) > 2 else "Answer: 1"

    result = CritiqueRevise(max_rounds=3).run_sync("q", backend=ScriptedBackend(reply))
    assert result.answer == "2" and result.stop_reason == "converged"


@pytest.mark.parametrize("cls", [Direct, ChainOfThought, TreeSearch])
def test_strategies_that_make_their_own_calls_refuse_an_inner_strategy(cls) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigurationError, match="takes no inner strategy"):
        cls(inner=Direct())


def test_each_inner_run_can_get_its_own_slice_of_the_budget() -> None:
    backend = wordy_backend([40])
    strategy = SelfConsistency(n=3, inner=CritiqueRevise(max_rounds=3, max_tokens=64), inner_budget=Budget(tokens=300))
    result = strategy.run_sync("q", backend=backend, budget=Budget(tokens=5_000))
    per_run: dict[int, int] = {}
    graph = result.graph
    for node in graph.nodes():
        if node.usage is not None and node.usage.known:
            first = graph.path_to(node.id)[1].id  # the inner run's first call
            per_run[first] = per_run.get(first, 0) + node.usage.total_tokens
    assert len(per_run) == 3
    assert all(tokens <= 300 for tokens in per_run.values())
    assert result.usage.total_tokens <= 900
    with pytest.raises(ConfigurationError, match="inner_budget needs an inner strategy"):
        SelfConsistency(inner_budget=Budget(tokens=10))
