"""``thinkloop ask``: answer one question, print the answer and an honest one-line account.

The account never claims more than happened: it reads the result's verdict, warnings and stop detail, which
the library computes (so ``serve``, ``bench``, the viewer and OpenTelemetry say the same), and the exit
status tells a script what happened (see :func:`exit_status` and the table in the README).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thinkloop.cli import (
    EXIT_BUDGET,
    EXIT_CHECK_FAILED,
    EXIT_ERROR,
    EXIT_NO_ANSWER,
    EXIT_OK,
    PROG,
    UsageError,
    fail,
)
from thinkloop.cli.argtypes import positive_float, positive_int
from thinkloop.cli.backends import make_backend

if TYPE_CHECKING:
    from thinkloop.runtime.budget import Budget
    from thinkloop.runtime.result import Result
    from thinkloop.strategies.base import Strategy

DEFAULT_STRATEGY = "cot"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Register ``ask`` on the top-level subparsers."""
    ask = commands.add_parser(
        "ask",
        help="answer one question",
        description="Answer one question with a reasoning strategy.",
        epilog="Backends: no flag runs the embedded SmolLM2-135M-Instruct in-process; --model FILE.gguf runs "
        "another GGUF model in-process; --model NAME uses the OpenAI API, or the server in OPENAI_BASE_URL "
        "when it is set; --base-url URL --model NAME uses any OpenAI-compatible server; --model plugin:NAME[:MODEL] "
        "uses an installed backend plugin ('thinkloop plugins' lists them). The key comes from "
        "OPENAI_API_KEY, or from the variable --api-key-env names. 'thinkloop strategies' lists every "
        "strategy's options.",
    )
    ask.add_argument("question", help="the question to answer; '-' reads it from stdin")
    ask.add_argument(
        "--strategy",
        metavar="SPEC",
        help="NAME or NAME:key=value,... (direct, cot, sc, sc-adaptive, bon, critique, tree, auto, effort:LEVEL); "
        f"default: {DEFAULT_STRATEGY}",
    )
    from thinkloop.strategies.effort import EFFORTS

    ask.add_argument(
        "--effort",
        choices=EFFORTS,
        metavar="LEVEL",
        help=f"how hard to think, one of {', '.join(EFFORTS)}: a strategy and token budget from the effort "
        "table (passed through to a reasoning model that takes reasoning_effort); instead of --strategy",
    )
    ask.add_argument("--base-url", metavar="URL", help="an OpenAI-compatible server (needs --model)")
    ask.add_argument(
        "--model",
        metavar="NAME",
        help="the model name at --base-url or the OpenAI API, or a .gguf file to run in-process "
        "(default: the embedded SmolLM2-135M-Instruct)",
    )
    ask.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="read the server's API key from this environment variable (default: OPENAI_API_KEY)",
    )
    ask.add_argument(
        "--system",
        "--system-prompt",
        dest="system_prompt",
        metavar="TEXT",
        help="the system prompt (default: the strategy's own)",
    )
    ask.add_argument(
        "--temperature", type=float, metavar="T", help="sampling temperature, 0 to 2 (default: the strategy's own)"
    )
    ask.add_argument(
        "--max-tokens",
        type=positive_int,
        metavar="N",
        help="completion limit per model call (default: the strategy's own, 512 for most)",
    )
    ask.add_argument("--budget-tokens", type=positive_int, metavar="N", help="hard limit on billed tokens")
    ask.add_argument("--budget-calls", type=positive_int, metavar="N", help="hard limit on model calls")
    ask.add_argument("--budget-seconds", type=positive_float, metavar="S", help="hard limit on wall-clock seconds")
    ask.add_argument(
        "--budget-dollars",
        type=positive_float,
        metavar="D",
        help="hard limit on spend (the model needs a price in the shipped price table)",
    )
    ask.add_argument("--json", action="store_true", help="print the whole result (graph included) as JSON")
    ask.add_argument(
        "--trace",
        type=Path,
        metavar="FILE",
        help="write the run's trace as JSON lines (appended when FILE exists; the account says so)",
    )
    ask.add_argument(
        "--view",
        action="store_true",
        help="write the run's viewer page (beside --trace, else a temporary file) and name it",
    )
    ask.add_argument("--check", action="append", metavar="CHECK", help=CHECK_HELP)
    ask.add_argument(
        "--require-answer",
        action="store_true",
        help=f"exit {EXIT_NO_ANSWER} when the reply states no answer ('Answer: ...', a boxed or final "
        "value); without it an open question's reply is an answer of its own",
    )
    return ask


# --- building the run -----------------------------------------------------------------------------------
def read_question(text: str) -> str:
    """The question, from stdin when it is ``-``; an empty question is a usage error."""
    if text == "-":
        text = sys.stdin.read()
    if not text.strip():
        raise UsageError(f"{PROG} ask: error: the question is empty")
    return text.strip()


CHECK_HELP = (
    "accept only an answer that passes CHECK (repeatable; all must pass): words:12, regex:PATTERN, "
    "number:7.2+-0.05, tests:FILE.py (run in the sandbox), lowercase, no-commas, ends-with:WORD, keyword:WORD*2, "
    "game24:4,7,8,8, sum-product:3. With a check, cot re-prompts with the check's feedback (up to 6 attempts, "
    "temperature 1); bon, critique and tree use it as their scorer, critic or value"
)


def make_strategy(args: argparse.Namespace, verifier: Any = None) -> Strategy:
    """The strategy the spec names, with the flags as overrides; options the command line cannot serve are
    one line each."""
    from thinkloop.exceptions import ConfigurationError
    from thinkloop.strategies.registry import UNUSED_OPTIONS, build_strategy, needs_verifier

    flags = {"max_tokens": args.max_tokens, "temperature": args.temperature, "system_prompt": args.system_prompt}
    overrides = {k: v for k, v in flags.items() if v is not None}
    effort = getattr(args, "effort", None)
    if effort is not None and args.strategy is not None:
        raise UsageError(
            f"{PROG} ask: error: --effort {effort} picks a strategy, and --strategy {args.strategy} "
            "names one too; give one"
        )
    args.strategy = f"effort:{effort}" if effort is not None else args.strategy or DEFAULT_STRATEGY
    name = args.strategy.strip().partition(":")[0]
    if args.system_prompt is not None and "system_prompt" in UNUSED_OPTIONS.get(name, ()):
        raise ConfigurationError(f"{name} writes its own prompts; --system does not apply to it")
    from thinkloop.verifiers.spec import check_overrides

    strategy = build_strategy(args.strategy, **overrides, **check_overrides(args.strategy, verifier))
    needed = needs_verifier(strategy)
    if needed is not None and verifier is None:
        raise ConfigurationError(
            f"{needed} needs a verifier, which the command line cannot supply; leave it at auto or run the "
            "strategy from Python with run(..., verifier=...)"
        )
    return strategy


def make_budget(args: argparse.Namespace, model: str) -> Budget | None:
    """The hard limits the flags set, priced from the shipped table when it knows the model (for the cost)."""
    from thinkloop.pricing import PriceTable
    from thinkloop.runtime.budget import Budget

    limits = {
        "tokens": args.budget_tokens,
        "calls": args.budget_calls,
        "seconds": args.budget_seconds,
        "dollars": args.budget_dollars,
    }
    limits = {k: v for k, v in limits.items() if v is not None}
    price = PriceTable.default().lookup(model)
    if args.budget_dollars is not None and price is None:
        raise UsageError(
            f"{PROG} ask: error: --budget-dollars needs a price for {model!r}, and the shipped "
            "price table has none (a local model costs nothing: use --budget-tokens)"
        )
    if not limits and price is None:
        return None
    return Budget(**limits, price=price)


def ask(args: argparse.Namespace) -> int:
    """Run ``thinkloop ask``; the exit status."""
    import anyio

    from thinkloop.verifiers.spec import verifier_from_checks

    question = read_question(args.question)
    verifier = verifier_from_checks(getattr(args, "check", None))
    strategy = make_strategy(args, verifier)
    from thinkloop.strategies.registry import needs_logprobs

    backend = make_backend(args.base_url, args.model, args.api_key_env, logprobs=needs_logprobs(strategy))
    budget = make_budget(args, backend.name)
    appended = args.trace is not None and args.trace.is_file() and args.trace.stat().st_size > 0
    recorded: list[Any] = []  # with --view and no --trace file, the events for the page

    async def run() -> Result:
        try:
            sinks = [recorded.append] if args.view and args.trace is None else []
            return await strategy.run(
                question, backend=backend, budget=budget, trace_path=args.trace, sinks=sinks, verifier=verifier
            )
        finally:
            # Close HTTP connections on the loop that opened them, not in a garbage collector later.
            with anyio.CancelScope(shield=True):
                await backend.aclose()

    result = anyio.run(run)
    if args.view:
        from thinkloop.cli.view import write_run_page

        page = write_run_page(args.trace if args.trace is not None else recorded, run_id=result.run_id)
        sys.stderr.write(f"view: {page}\n")
    wants_answer = bool(getattr(args, "require_answer", False)) or reads_answer(getattr(args, "check", None))
    status = exit_status(result, wants_answer=wants_answer)
    if args.json:
        payload = result.to_json_dict() | {"trace_appended": appended, "exit_status": status}
        sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
    elif result.text is not None:
        if verifier is not None:
            from thinkloop.verifiers.spec import verdict_lines

            sys.stdout.write("".join(line + "\n" for line in verdict_lines(result.graph)))
        print_result(
            result,
            appended=appended,
            show_answer=wants_answer or (verifier is None and (result.votes is not None or states_answer(result.text))),
        )
    if status != EXIT_OK:
        kind, message = why_not_ok(result, status, appended=appended)
        fail(message, status, kind=kind)
    return status


main = ask


# --- what the run did -----------------------------------------------------------------------------------
def reads_answer(checks: list[str] | None) -> bool:
    """Whether a check judges a stated answer (``number:``) rather than the whole reply (``words:``,
    ``tests:``...): only then is an answer line asked for, and shown."""
    if not checks:
        return False
    from thinkloop.verifiers.spec import parse_check

    return any(parse_check(check)["kind"] == "number" for check in checks)


_STATED = re.compile(
    r"\\(?:boxed|fbox)\b|\banswer\b\s*(?:\*\*|__)?\s*(?:[:：=]|is\b|would be\b)|^\s*####", re.IGNORECASE | re.MULTILINE
)


def states_answer(text: str | None) -> bool:
    """Whether a reply states an answer ("Answer: ...", "the answer is", a box, "####"), rather than having
    one guessed from its last number: a story's "3 friends" is not an answer to show."""
    return text is not None and _STATED.search(text) is not None


def exit_status(result: Result, *, wants_answer: bool = False) -> int:
    """What happened, as a script reads it (the table in the README): 0 answered (and passed, when checked),
    1 error, 3 the check failed, 4 no answer, 5 the budget or time ran out first."""
    if result.stop_reason == "error":
        return EXIT_ERROR
    cut_off = result.candidate is not None and result.candidate.finish_reason == "length"
    satisfied = (
        result.text is not None
        and result.verdict != "failed"
        and (result.answer is not None or result.verdict == "passed" or not (wants_answer or cut_off))
    )
    if result.stop_reason in ("budget", "deadline") and not satisfied:
        return EXIT_BUDGET
    if result.verdict == "failed":
        return EXIT_CHECK_FAILED
    if not satisfied:
        return EXIT_NO_ANSWER
    return EXIT_OK


def why_not_ok(result: Result, status: int, *, appended: bool = False) -> tuple[str, str]:
    """The one stderr line for a non-zero exit: its kind (``error``, ``check failed`` ...) and message."""
    if status == EXIT_ERROR:
        return "error", result.error or result.stop_detail or f"the run failed after {account(result)}"
    if status == EXIT_BUDGET:
        return "budget exhausted", result.stop_detail or "the budget ran out"
    if status == EXIT_CHECK_FAILED:
        feedback = f": {result.feedback}" if result.feedback else ""
        return "check failed", f"{result.stop_detail}{feedback}" if result.stop_detail else f"the answer{feedback}"
    if result.text is None:
        return "no answer", "; ".join([result.stop_detail or "no reply", *result.warnings])
    return "no answer", "; ".join(["no answer found in the reply", *result.warnings])


def vote_split(result: Result) -> list[tuple[str, int]]:
    """The vote's answers with their counts, most votes first (empty where there was no vote)."""
    return [(str(a), int(c)) for a, c in (result.votes or {}).items()]


def _max_tokens_of(result: Result) -> int | None:
    """The completion limit of the call that produced the answer (after any clamp to the budget left)."""
    for node in reversed(result.answer_path()):
        request = getattr(node, "request", None)
        if request is not None and request.max_tokens is not None:
            return int(request.max_tokens)
    return None


def account(result: Result, found: list[str] | None = None, *, appended: bool = False) -> str:
    """One line: calls, tokens, seconds, why it stopped, the strategy and model, and every warning."""
    usage = result.usage
    calls = f"{usage.calls} call" + ("" if usage.calls == 1 else "s")
    tokens = f"{usage.total_tokens} tokens ({usage.prompt_tokens} prompt + {usage.completion_tokens} completion"
    if usage.reasoning_tokens:
        tokens += f", {usage.reasoning_tokens} of them reasoning"
        if usage.estimated_reasoning_tokens:
            whole = usage.estimated_reasoning_tokens >= usage.reasoning_tokens
            tokens += " (estimated)" if whole else " (partly estimated)"
    tokens += ")"
    from thinkloop.runtime.findings import routine_stop

    stop = f"stop: {result.stop_reason}"
    if result.stop_detail and not routine_stop(result):
        stop += f" ({result.stop_detail})"
    parts = [calls, tokens, f"{result.latency_s:.1f} s", stop, result.strategy, result.model]
    if result.verdict != "unchecked":
        parts.insert(3, f"check: {result.verdict}")
    if usage.calls_without_usage:
        parts.insert(2, f"{usage.calls_without_usage} without usage")
    if result.cost is not None:
        parts.insert(3, f"${result.cost:.4f}")
    if result.trace_path:
        parts.append(f"trace: {result.trace_path}" + (" (appended)" if appended else ""))
    parts.extend(f"warning: {w}" for w in (result.warnings if found is None else found))
    return " · ".join(parts)


def print_result(
    result: Result, found: list[str] | None = None, *, appended: bool = False, show_answer: bool = True
) -> None:
    """The reply, the answer (only where one was stated, in the form asked for), the vote and the account."""
    from rich.console import Console
    from rich.text import Text

    from thinkloop.runtime.terminal import inert

    console = Console(highlight=False)
    if result.text is not None:
        console.print(Text(inert(result.text.strip())), soft_wrap=True)
    if result.answer is not None and show_answer:
        if result.verdict == "failed":
            console.print(
                Text.assemble(("Answer (failed the check): ", "bold"), (inert(result.answer), "bold red")),
                soft_wrap=True,
            )
        else:
            console.print(Text.assemble(("Answer: ", "bold"), (inert(result.answer), "bold green")), soft_wrap=True)
    split = vote_split(result)
    if split:
        shown = ", ".join(f"{answer} ×{count}" for answer, count in split)
        console.print(Text.assemble(("Votes: ", "bold"), inert(shown)), soft_wrap=True)
    console.print(Text(inert(account(result, found, appended=appended)), style="dim"), soft_wrap=True)
