#!/bin/bash
# A training round for a fixed wall-clock budget, made to fit a lent GPU machine's limits: one call of
# at most 10 minutes, and files back of at most 16 MiB each.
#
#   scripts/timed_round.sh SECONDS RUN OUT sicodec-train-arguments...
#
# Trains (`python -m sicodec train ... RUN`) until SECONDS pass, then stops it with SIGTERM, which
# writes a checkpoint of the step in progress. The first checkpoint written after half the time is
# kept as a second snapshot. Both are slimmed (float16 weights and the run's metadata, no optimiser;
# the last one with its live weights and its moving average, the half-time one with the average only)
# and cut into 15 MB parts: OUT/final.pt.partNN and OUT/mid.pt.partNN. Put them together with
# `cat OUT/final.pt.part* > final.pt`, then `sicodec export final.pt NAME` as for any checkpoint.
# If the first try breaks before its first checkpoint (e.g. in torch.compile), it retries once
# without --compile for the time left. PY (default python3) is the interpreter.
set -u
SECONDS_BUDGET=$1 RUN=$2 OUT=$3; shift 3
PY=${PY:-python3}; T0=$(date +%s)
mkdir -p "$RUN" "$OUT/logs"
elapsed() { echo $(( $(date +%s) - T0 )); }
train() {  # $1: seconds, the rest: the train arguments
  local secs=$1; shift
  timeout -s TERM "$secs" "$PY" -m sicodec train "$@" >> "$OUT/logs/train.txt" 2>&1
}
( sleep $((SECONDS_BUDGET / 2)); before=$(stat -c %Y "$RUN/checkpoint.pt" 2>/dev/null || echo 0)
  while sleep 1; do
    now=$(stat -c %Y "$RUN/checkpoint.pt" 2>/dev/null || echo 0)
    if [ "$now" != "$before" ]; then cp "$RUN/checkpoint.pt" "$RUN/mid.pt"; break; fi  # written by rename: whole
  done ) &
WATCH=$!
args=("$@")
train "$SECONDS_BUDGET" "${args[@]}" "$RUN"
if [ ! -f "$RUN/checkpoint.pt" ]; then
  echo "=== no checkpoint after $(elapsed) s: once more without --compile" >> "$OUT/logs/train.txt"
  plain=(); for a in "${args[@]}"; do [ "$a" = --compile ] || plain+=("$a"); done
  train $((SECONDS_BUDGET - $(elapsed))) "${plain[@]}" "$RUN"
fi
kill $WATCH 2>/dev/null
echo "=== training ended after $(elapsed) s" >> "$OUT/logs/train.txt"
cp "$RUN/log.csv" "$OUT/logs/" 2>/dev/null
for pair in checkpoint.pt:final mid.pt:mid; do
  src=$RUN/${pair%%:*} name=${pair##*:}
  [ -f "$src" ] || continue
  "$PY" - "$src" "$RUN/$name.slim.pt" "$name" <<'PYEOF' >> "$OUT/logs/slim.txt" 2>&1 && split -b 15M -d "$RUN/$name.slim.pt" "$OUT/$name.pt.part"
import sys
from pathlib import Path
from sicodec.train.loop import load_checkpoint, save_checkpoint
src, dst, name = sys.argv[1:]
state = load_checkpoint(Path(src))
half = lambda weights: {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
slim = {k: state[k] for k in ("arch", "config", "step", "lmbda", "recipe", "best_score") if k in state}
if name == "mid":  # the average alone, as the model
    slim["model"] = half(state["ema"]["weights"] if "ema" in state else state["model"])
else:
    slim["model"] = half(state["model"])
    if "ema" in state:
        slim["ema"] = {**state["ema"], "weights": half(state["ema"]["weights"])}
save_checkpoint(Path(dst), **slim)
print(dst, "step", state["step"])
PYEOF
done
echo "=== done after $(elapsed) s" >> "$OUT/logs/train.txt"
