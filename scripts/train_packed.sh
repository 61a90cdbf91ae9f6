#!/usr/bin/env bash
# Trains configs side by side on one accelerator machine that has neither the raw data
# nor TensorFlow, from a data pack (python -m fer.data.pack), then bundles each run.
#   bash scripts/train_packed.sh PACK SECONDS BUNDLE_DIR CONFIG:NAME...
# CONFIG is what --config takes, arguments included (the last ':' starts NAME):
#   configs/resnet_fer.py:size=tiny,data=ferplus,stride=1:resnet_fer_tiny_fullres
# Each config runs unchanged but for data_dir=PACK and its loader's worker count
# (the machine's cores shared out); runs go to $RUNS/NAME (default runs/packed), logs
# beside them.
# A run still going after SECONDS is stopped (the machine is lent by the minute);
# its exit status says so. Each run is bundled as a slim copy (fer.training.slim:
# best and newest checkpoints, weights only, a third of a full checkpoint), ready
# for evaluation, export and ensembles; to resume a run, keep $RUNS/NAME.
# BUNDLE_DIR gets NAME.tgz per run and train_packed.txt (each run's status and time).
set -uo pipefail
PACK=$1 SECONDS_LEFT=$2 BUNDLE=$3; shift 3
PY=${PYTHON:-python}
RUNS=${RUNS:-runs/packed}
export XLA_PYTHON_CLIENT_PREALLOCATE=false   # Several processes share one accelerator.
cores=$(nproc); workers=$(( cores / $# - 1 )); (( workers < 1 )) && workers=1
mkdir -p "$RUNS" "$BUNDLE"
declare -A pids started
for spec in "$@"; do
  config=${spec%:*} name=${spec##*:}
  timeout --signal=INT --kill-after=30 "$SECONDS_LEFT" "$PY" launch.py --config "$config" \
      --workdir "$RUNS/$name" --config.data_dir="$PACK" --config.num_workers=$workers \
      --config.progress_bar=False --config.export_variants="()" \
      > "$RUNS/$name.log" 2>&1 &
  pids[$name]=$! started[$name]=$SECONDS
  echo "started $name ($config, $workers loader workers)"
done
for name in "${!pids[@]}"; do
  wait "${pids[$name]}"; rc=$?
  line="$name: exit $rc after $(( SECONDS - started[$name] )) s"
  rm -rf "$RUNS/$name.slim"   # A rerun bundles afresh.
  if "$PY" -m fer.training.slim "$RUNS/$name" "$RUNS/$name.slim"; then
    tar czf "$BUNDLE/$name.tgz" -C "$RUNS/$name.slim" --transform "s,^\.,$name," .
    line="$line, bundled (slim)"
  else
    tail -5 "$RUNS/$name.log"; line="$line, nothing to bundle"
  fi
  echo "$line" | tee -a "$BUNDLE/train_packed.txt"
done
