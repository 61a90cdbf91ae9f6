"""python -m fer.export --workdir runs/xcao2 [--variants float32,int8]

Exports a trained run's best checkpoint to <workdir>/export/ and prints how
each variant compares with the JAX model (export.json).
"""

from __future__ import annotations

from absl import app
from absl import flags

_WORKDIR = flags.DEFINE_string("workdir", None, "A training run's workdir.", required=True)
_VARIANTS = flags.DEFINE_list(
    "variants", ["float32"], "Any of float32, float16, dynamic_range, int8.")
_OUT = flags.DEFINE_string("out", None, "Export directory (default <workdir>/export).")
_WHICH = flags.DEFINE_string("which", "best", "Checkpoint: best, latest or an epoch.")
_CALIBRATION = flags.DEFINE_integer(
    "calibration", 500, "Training images used to calibrate int8.")
_VALIDATION = flags.DEFINE_integer(
    "num_validation", 1000, "Validation images every variant is compared with JAX on.")
_MAX_DROP = flags.DEFINE_float(
    "max_accuracy_drop", 1.0, "Refuse a quantized variant whose validation accuracy or "
    "balanced accuracy is more than this many points below float32's.")
_MIN_AGREEMENT = flags.DEFINE_float(
    "min_agreement", 0.95, "Refuse a quantized variant below this top-1 agreement.")


def summary_table(record) -> str:
    lines = ["| variant | file | KiB | accuracy | balanced accuracy | top-1 agreement | "
             "max abs delta p | convert s |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for status, entries in (("", record["variants"]), (" (refused)", record["refused"])):
        for name, e in entries.items():
            accuracy = " | ".join(f"{e[k]:.2%}" if k in e else "-"
                                  for k in ("accuracy", "balanced_accuracy"))
            lines.append(f"| {name}{status} | {e['file'] or '-'} | {e['bytes'] / 1024:.1f} | "
                         f"{accuracy} | {e['top1_agreement']:.2%} | "
                         f"{e['max_abs_delta_p']:.2e} | {e['convert_seconds']:.1f} |")
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from fer.export import tflite

    which = int(_WHICH.value) if _WHICH.value.isdigit() else _WHICH.value
    try:
        out_dir = tflite.export_workdir(
            _WORKDIR.value, tuple(_VARIANTS.value), calibration=_CALIBRATION.value,
            num_validation=_VALIDATION.value, which=which, out_dir=_OUT.value,
            max_accuracy_drop=_MAX_DROP.value, min_agreement=_MIN_AGREEMENT.value)
    except tflite.QuantizationRefused as e:
        print(summary_table(e.record))
        raise SystemExit(f"\nError: {e}")
    print(f"Exported to {out_dir}\n")
    print(summary_table(tflite.load_record(out_dir)))


if __name__ == "__main__":
    app.run(main)
