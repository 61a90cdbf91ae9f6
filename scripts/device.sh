#!/usr/bin/env bash
# The one prepared script for a lent accelerator machine (no TensorFlow, no raw data,
# JAX preinstalled, no network), in two halves:
#
#   bash scripts/device.sh prepare DATASET DATA_DIR
#       here, where the data and the package registry are: writes the ignored folder
#       .device/ with DATASET.npz (python -m fer.data.pack; FER+ 52 MiB, FER2013 51 MiB)
#       and wheels/ (the pinned packages of requirements.txt such a machine lacks,
#       about 8 MiB), so that both fit one 64 MiB transfer.
#   bash scripts/device.sh train DATASET SECONDS OUT CONFIG:NAME...
#       there: installs the carried wheels where an import fails, then trains the
#       configs side by side from .device/DATASET.npz until SECONDS
#       (scripts/train_packed.sh) and leaves a slim bundle per run in OUT.
#   bash scripts/device.sh install
#       there: only the wheels (before a command that imports the configs, such as
#       `scripts/table5.sh --list`).
#
# With the device tool: run(carry=[".device"], command="bash scripts/device.sh train
# fer2013 480 $OUT configs/resnet_fer.py:size=base,data=fer2013,stride=1:resnet_fer_fullres ...").
# Untar each OUT/NAME.tgz into runs/DATASET/: a run like any other (docs/training.md).
set -euo pipefail
PY=${PYTHON:-python}
DEVICE_DIR=${DEVICE_DIR:-.device}
# What a bare JAX image lacks; versions come from requirements.txt, the one place they live.
CARRIED="flax optax orbax-checkpoint grain ml-collections array-record portpicker"

usage() { sed -n '2,19p' "$0" >&2; exit 2; }

pinned() {  # name==version for $CARRIED: requirements.txt's pin, else the version installed here
  local name line
  for name in $CARRIED; do
    line=$(grep -i -E "^${name}==" requirements.txt) ||
      line="$name==$("$PY" -c "import importlib.metadata as m; print(m.version('$name'))")" ||
      { echo "device.sh: $name is neither pinned nor installed" >&2; return 2; }
    echo "$line"
  done
}

install() {  # The carried wheels, where an import fails.
  if ! "$PY" -c "import flax, optax, orbax.checkpoint, grain, ml_collections" 2>/dev/null; then
    "$PY" -m pip install --quiet --no-deps --no-index "$DEVICE_DIR"/wheels/*.whl
  fi
}

case "${1:-}" in
  prepare)
    [[ $# -eq 3 ]] || usage
    dataset=$2 data_dir=$3
    wheels=$(pinned)  # First: a missing pin should not wait for the pack's minute.
    mkdir -p "$DEVICE_DIR/wheels"
    "$PY" -m fer.data.pack "$dataset" --data_dir "$data_dir" --out "$DEVICE_DIR/$dataset.npz"
    # shellcheck disable=SC2086
    "$PY" -m pip download --quiet --no-deps --dest "$DEVICE_DIR/wheels" $wheels
    du -sh "$DEVICE_DIR"
    ;;
  install)
    install
    ;;
  train)
    [[ $# -ge 5 ]] || usage
    dataset=$2 seconds=$3 out=$4; shift 4
    pack="$DEVICE_DIR/$dataset.npz"
    [[ -f $pack ]] || { echo "device.sh: no $pack: run 'device.sh prepare' here first" >&2; exit 2; }
    install
    "$PY" -c "import jax; print('devices:', jax.devices())"
    RUNS=${RUNS:-runs/$dataset} bash scripts/train_packed.sh "$pack" "$seconds" "$out" "$@"
    ;;
  *) usage ;;
esac
