#!/usr/bin/env bash
# Reproduce benchmarks/results/verifiable/: the embedded SmolLM2-135M-Instruct on the verifiable-tasks set,
# per family: one call (direct, cot), best-of-n with the check (4 and 8 attempts), critique-and-revise with the
# check's feedback (4 and 8 attempts), chain of thought re-prompted with the feedback (4 and 8 attempts), tree
# search for the puzzles, self-consistency where an answer can be voted. Then the table and plot.
#
# Resumable: every command appends to the same results file and skips what is recorded. Families run in
# growing slices (the first 4 tasks of each, then 8, ...), so when time runs out every config has about the
# same tasks done; the table compares configs on the tasks all of them finished.
#
#   benchmarks/run_verifiable.sh                  # 20 tasks per family (hours on a busy 2-core CPU)
#   LIMITS="4 8" benchmarks/run_verifiable.sh     # a quick look
#   REPORT_ONLY=1 benchmarks/run_verifiable.sh    # just the table and plot
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=${RESULTS:-benchmarks/results/verifiable}
OUT=${OUT:-$RESULTS/results.jsonl}
MAX_TOKENS=${MAX_TOKENS:-48}
CODE_MAX_TOKENS=${CODE_MAX_TOKENS:-96}
LIMITS=${LIMITS:-4 8 12 16 20}
FAMILIES=${FAMILIES:-code ph sumproduct words constraints game24}
THREADS=${THREADS:-1}
PY=${PYTHON:-.venv/bin/python}
run() { "$PY" -m thinkloop.cli.bench run "$@" --out "$OUT" --threads "$THREADS" --quiet; }

if [ -z "${REPORT_ONLY:-}" ]; then
  for limit in $LIMITS; do
    for family in $FAMILIES; do
      # one call with each prompt (direct's, and the step-by-step one the loops use), then the loops:
      # best-of-n scored by the check, critique-and-revise with the check's feedback as the critique, and
      # chain of thought re-prompted with the feedback at temperature 1 (what `ask --check` does)
      strategies=(--strategy direct --strategy cot --strategy bon:n=4 --strategy bon:n=8
                  --strategy critique:max_rounds=3 --strategy critique:max_rounds=7
                  --strategy cot:max_rounds=4,temperature=1.0 --strategy cot:max_rounds=8,temperature=1.0)
      case $family in
        ph | sumproduct) strategies+=(--strategy sc:n=8) ;;
      esac
      case $family in
        game24 | sumproduct) strategies+=(--strategy tree:mode=dfs,value=verifier,branching=2,max_depth=2) ;;
      esac
      tokens=$MAX_TOKENS
      [ "$family" = code ] && tokens=$CODE_MAX_TOKENS  # a function and its fence need more room than a sentence
      run "verifiable-$family" --limit "$limit" --max-tokens "$tokens" "${strategies[@]}"
    done
  done
fi

"$PY" benchmarks/verifiable_table.py "$OUT" --out "$RESULTS"
