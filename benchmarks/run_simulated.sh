#!/usr/bin/env bash
# Reproduce benchmarks/results/simulated/: self-consistency's accuracy against its number of samples on the
# simulated model (each sample right with probability 0.45, else off by -1, +1 or +2 with weights 5:3:2),
# where the majority vote's accuracy is known in closed form. Seconds, not hours; deterministic (seeded).
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${RESULTS:-benchmarks/results/simulated}
OUT=$RESULTS/results.jsonl
bench() { python -m thinkloop.cli.bench "$@"; }

bench run simulated --simulated 0.45 --limit 500 --out "$OUT" --quiet \
  --strategy direct --strategy sc:n=1 --strategy sc:n=2 --strategy sc:n=3 --strategy sc:n=5 --strategy sc:n=8 \
  --strategy sc:n=16 --strategy sc:n=8,adaptive=true --strategy sc:n=16,adaptive=true
bench report "$OUT" --format markdown > "$RESULTS/table.md"
bench report "$OUT" --format json > "$RESULTS/table.json"
bench report "$OUT" --format table --plots "$RESULTS/plots" > /dev/null
