#!/usr/bin/env bash
# Table 5 with its per-label tables: the ten designs under one protocol
# (configs/table5.py), trained, exported and compared, in one command:
#
#   bash scripts/table5.sh [DATA_DIR] [--protocol table5|thesis] [--seeds N]
#       [--designs a,b,...] [--runs DIR] [--out DIR] [--estimate] [--list] [-- FLAGS...]
#
#   DATA_DIR    FER+ in Microsoft's layout, or its pack (python -m fer.data.pack);
#               default $FER_DATA/ferplus.
#   --protocol  table5 (default; the shipped recipe, 30 epochs) or thesis (10 epochs).
#   --seeds N   seeds 0..N-1 for the designs under 2M parameters (configs/table5.py
#               MULTI_SEED; default 3), seed 0 for the others.
#   --designs   a subset of configs/table5.py's DESIGNS (default all ten).
#   --runs DIR  the runs (default runs/table5/PROTOCOL; runs/table5/PROTOCOL_flags when
#               FLAGS are given): DIR/DESIGN, DIR/DESIGN_seedN past seed 0. A run with
#               report.json is skipped, a killed one resumes: start the script again.
#   --out DIR   the tables (default DIR/tables, untracked; benchmarks/results/table5_PROTOCOL
#               updates the committed ones).
#   --estimate  trains each design ESTIMATE_EPOCHS (3) epochs of ESTIMATE_STEPS (10) steps
#               in runs/table5/estimate/PROTOCOL, prints each row's time at the measured
#               img/s (validation included) and trains nothing else.
#   --list      prints CONFIG:NAME per row, what scripts/device.sh train takes.
#   -- FLAGS    launch.py flags for every run, e.g. a smoke test: -- --config.epochs=1
#               --config.steps_per_epoch=2 (benchmarks.compare puts such runs in a table
#               of their own: their --config string says what was changed).
#
# On a lent accelerator (docs/training.md): here `bash scripts/device.sh prepare ferplus
# DATA_DIR`; there `bash scripts/device.sh install && bash scripts/device.sh train ferplus
# SECONDS $OUT $(bash scripts/table5.sh --list)` (all rows side by side; or this script
# itself with DATA_DIR .device/ferplus.npz, one row after another); here untar each
# $OUT/NAME.tgz into runs/table5/table5/ and run this script: it finds those rows
# trained and compares.
set -euo pipefail
PY=${PYTHON:-python}
data=${FER_DATA:+$FER_DATA/ferplus} protocol=table5 seeds=3 designs="" runs="" out=""
mode=train flags=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --protocol) protocol=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --designs) designs=${2//,/ }; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --estimate) mode=estimate; shift ;;
    --list) mode=list; shift ;;
    --) shift; flags=("$@"); break ;;
    -*) sed -n '2,32p' "$0" >&2; exit 2 ;;
    *) data=$1; shift ;;
  esac
done
# The design list, the multi-seed designs and the epochs come from configs/table5.py.
read -r all multi epochs < <("$PY" -c "
import configs
from configs import table5
print(','.join(table5.DESIGNS), ','.join(table5.MULTI_SEED),
      configs.load(table5.spec('xcao2', '$protocol')).epochs)")
designs=${designs:-${all//,/ }}
for design in $designs; do
  [[ ",$all," == *",$design,"* ]] || { echo "table5.sh: no design $design in $all" >&2; exit 2; }
done
runs=${runs:-runs/table5/$protocol${flags[*]:+_flags}}
out=${out:-$runs/tables}

rows=()  # NAME:SEED
for design in $designs; do
  n=1; [[ ",$multi," == *",$design,"* ]] && n=$seeds
  rows+=("$design:0")
  for (( seed = 1; seed < n; seed++ )); do rows+=("${design}_seed$seed:$seed"); done
done
spec() { echo "configs/table5.py:model=${1%%_seed*},protocol=$protocol,seed=$2"; }

if [[ $mode == list ]]; then
  for row in "${rows[@]}"; do echo "$(spec "${row%%:*}" "${row#*:}"):${row%%:*}"; done
  exit 0
fi
[[ -n $data ]] || { echo "table5.sh: give DATA_DIR or set FER_DATA" >&2; exit 2; }
launch() {  # WORKDIR CONFIG [FLAGS]
  local workdir=$1 config=$2; shift 2
  if [[ -f $workdir/report.json ]]; then echo "== $workdir: trained"; return; fi
  echo "== $workdir: $config $*"
  "$PY" launch.py --config "$config" --workdir "$workdir" --config.data_dir="$data" \
      --config.progress_bar=False "$@"
}

if [[ $mode == estimate ]]; then
  at=runs/table5/estimate/$protocol
  for design in $designs; do
    launch "$at/$design" "$(spec "$design" 0)" --config.epochs="${ESTIMATE_EPOCHS:-3}" \
        --config.steps_per_epoch="${ESTIMATE_STEPS:-10}" --config.export_variants="()" \
        ${flags[@]+"${flags[@]}"}
  done
  echo "Per row of --protocol $protocol ($seeds seeds for ${multi//,/, }; one for the others):"
  "$PY" -m benchmarks.compare --runs "$at" --estimate "$epochs"
  exit 0
fi

echo "${#rows[@]} rows under --protocol $protocol into $runs, tables into $out"
for measured in "$runs" "runs/table5/estimate/$protocol"; do  # The speeds measured so far.
  if compgen -G "$measured/*/report.json" > /dev/null; then
    "$PY" -m benchmarks.compare --runs "$measured" --estimate "$epochs"; break
  fi
done
for row in "${rows[@]}"; do
  launch "$runs/${row%%:*}" "$(spec "${row%%:*}" "${row#*:}")" ${flags[@]+"${flags[@]}"}
done
# int8 and float32 exported where missing, timed at batch 1; the tables of these runs only.
"$PY" -m benchmarks.compare --runs "$runs" --out "$out" --variants float32,int8 \
    --timing-runs "${TIMING_RUNS:-50}" --arm ""
