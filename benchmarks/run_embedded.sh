#!/usr/bin/env bash
# Reproduce benchmarks/results/embedded/: the embedded SmolLM2-135M-Instruct on the first 100 SVAMP and
# the first 100 GSM8K problems, then regenerate the committed table and plots from it.
#
# Resumable: every command appends to the same results file and skips what is already recorded, so stop it
# at any time (Ctrl-C, kill) and start it again. The sampling strategies run in growing slices (the first
# 5 problems, then 10, ...), so when time runs out every config has about the same problems done.
#
#   benchmarks/run_embedded.sh              # everything (hours on 2 CPU cores)
#   LIMITS="10 20" benchmarks/run_embedded.sh   # the sampling strategies on the first 20 only
#   REPORT_ONLY=1 benchmarks/run_embedded.sh    # just regenerate the table and plots
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=${RESULTS:-benchmarks/results/embedded}
OUT=$RESULTS/results.jsonl
MAX_TOKENS=${MAX_TOKENS:-192}
DATA_DIR=${THINKLOOP_DATA:-../shared/data}
LIMITS=${LIMITS:-5 10 15 20 25 30 40 50 60 70 80 90 100}
# llama.cpp's threads: unset, batched sampling measures one and two and keeps the faster (THREADS=1 pins it).
THREADS=${THREADS:-}
bench() { python -m thinkloop.cli.bench "$@"; }
run() { bench run "$@" --data-dir "$DATA_DIR" --max-tokens "$MAX_TOKENS" --out "$OUT" --traces "$RESULTS/traces" \
  ${THREADS:+--threads "$THREADS"}; }

if [ -z "${REPORT_ONLY:-}" ]; then
  # 1. The single-call strategies on all 100 problems of each set.
  for set in svamp gsm8k; do
    run "$set" --limit 100 --strategy direct --strategy cot
  done
  # 2. The sampling strategies, in growing slices. bon uses an LLM judge on the same model.
  for limit in $LIMITS; do
    for set in svamp gsm8k; do
      run "$set" --limit "$limit" --strategy sc:n=8 --strategy sc:n=8,adaptive=true \
        --strategy bon:n=8,scorer=judge --strategy critique
    done
  done
fi

# 3. The committed table and plots (deterministic: the same results file gives the same bytes).
bench report "$OUT" --format markdown > "$RESULTS/table.md"
bench report "$OUT" --format json > "$RESULTS/table.json"
bench report "$OUT" --format table --plots "$RESULTS/plots" > /dev/null
