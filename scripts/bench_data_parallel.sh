#!/usr/bin/env bash
# Data-parallel training throughput: the digits example in one process (all cores) against
# `mpirun -np N` (the cores shared among the ranks), same global batches and epochs.
# Usage: scripts/bench_data_parallel.sh [EPOCHS] [RANKS...]   (default: 60 epochs, ranks 2)
# Builds the example in release mode first; prints each run's training line and per-step split.
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-60}
shift || true
ranks=("${@:-2}")
cargo build --release --example train_digits --quiet
bin=target/release/examples/train_digits
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
for model in mlp cnn; do
  for round in 1 2 3; do
    echo "== $model, round $round: one process"
    "$bin" "$model" "$epochs" | grep -E "^(training|final)"
    for n in "${ranks[@]}"; do
      echo "== $model, round $round: mpirun -np $n"
      mpirun -np "$n" --oversubscribe "$bin" "$model" "$epochs" | grep -E "^(training|rank 0|final)"
    done
  done
done
