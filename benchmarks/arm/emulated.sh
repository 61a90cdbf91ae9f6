#!/usr/bin/env bash
# An aarch64 CPU on an x86-64 Linux machine: a 64-bit ARM Debian root run
# through qemu-user, with the same two packages a Raspberry Pi gets.
#
#   benchmarks/arm/emulated.sh DIR                     # build the root (once)
#   benchmarks/arm/emulated.sh DIR --model M.tflite    # build if needed, then run
#                                                      # `python -m benchmarks.arm --emulate DIR ...`
#
# Needs root (debootstrap, chroot, binfmt_misc), Debian's package mirror and
# PyPI. Steps: install debootstrap + qemu-user-static + binfmt-support on the
# host; mount binfmt_misc if it is not mounted and enable qemu-aarch64; debootstrap
# bookworm/arm64 into DIR with python3 + venv; download the aarch64 wheels of
# numpy and ai-edge-litert (the versions pinned in requirements.txt, so both CPUs
# run the same LiteRT) with the host's pip (its proxy and certificate settings
# apply), and install them offline into a venv at /opt/litert in the root.
# Each step is skipped when already done. Timings in this root are emulated,
# never device timings.
set -euo pipefail

if [[ $# -lt 1 || "$1" == -* ]]; then
  echo "usage: $0 DIR [benchmarks.arm options, e.g. --model M.tflite]" >&2
  exit 2
fi
ROOT="$1"; shift
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE="${DEBIAN_SUITE:-bookworm}"
PY=/opt/litert/bin/python
HOST_PYTHON="${FER_PYTHON:-python3}"
# Commands in the root see none of the host's environment (PIP_*, PYTHONPATH...).
in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }

pin() {  # pin NAME -> NAME==VERSION from requirements.txt, else NAME
  local line
  line="$(grep -iE "^$1==" "$REPO/requirements.txt" || true)"
  echo "${line:-$1}"
}

if [[ $(id -u) -ne 0 ]]; then
  echo "$0: needs root (debootstrap, chroot and binfmt_misc); try sudo" >&2
  exit 1
fi

if ! command -v debootstrap >/dev/null || ! command -v qemu-aarch64-static >/dev/null \
    || ! command -v update-binfmts >/dev/null; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap qemu-user-static binfmt-support
fi

if [[ ! -e /proc/sys/fs/binfmt_misc/register ]]; then
  mount binfmt_misc -t binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
  update-binfmts --enable qemu-aarch64
fi
if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
  echo "$0: qemu-aarch64 is not registered in binfmt_misc (update-binfmts --display)" >&2
  exit 1
fi

if [[ ! -x "$ROOT/usr/bin/python3" ]]; then
  mkdir -p "$ROOT"
  debootstrap --arch=arm64 --variant=minbase \
    --include=python3,python3-venv,ca-certificates "$SUITE" "$ROOT" "$MIRROR"
fi

if ! in_root "$PY" -c "import numpy, ai_edge_litert.interpreter" 2>/dev/null; then
  version="$(in_root /usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  rm -rf "$ROOT/opt/wheels"
  "$HOST_PYTHON" -m pip download --only-binary=:all: --python-version "$version" \
    --platform manylinux_2_28_aarch64 --platform manylinux_2_27_aarch64 \
    --platform manylinux2014_aarch64 --platform linux_aarch64 \
    -d "$ROOT/opt/wheels" "$(pin numpy)" "$(pin ai-edge-litert)"
  in_root /usr/bin/python3 -m venv /opt/litert
  in_root "$PY" -m pip install --no-index --find-links /opt/wheels \
    --disable-pip-version-check "$(pin numpy)" "$(pin ai-edge-litert)"
fi

machine="$(in_root /usr/bin/uname -m)"
echo "aarch64 root ready: $ROOT ($machine, $(in_root "$PY" -c \
  'import platform, importlib.metadata as m; print("Python", platform.python_version(), "ai-edge-litert", m.version("ai-edge-litert"))'))"
if [[ "$machine" != aarch64 ]]; then
  echo "$0: the root reports $machine, not aarch64" >&2
  exit 1
fi

if [[ $# -gt 0 ]]; then
  cd "$REPO"
  exec "${FER_PYTHON:-python}" -m benchmarks.arm --emulate "$ROOT" "$@"
fi
