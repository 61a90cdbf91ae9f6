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
_MIN_AGREEMENT = flags.DEFINE_float(
    "min_int8_agreement", 0.99, "Refuse an int8 model below this top-1 agreement.")


def summary_table(record) -> str:
    lines = ["| variant | file | KiB | top-1 agreement | max abs delta p | convert s |",
             "| --- | --- | --- | --- | --- | --- |"]
    for status, entries in (("", record["variants"]), (" (refused)", record["refused"])):
        for name, e in entries.items():
            lines.append(f"| {name}{status} | {e['file'] or '-'} | {e['bytes'] / 1024:.1f} | "
                         f"{e['top1_agreement']:.2%} | {e['max_abs_delta_p']:.2e} | "
                         f"{e['convert_seconds']:.1f} |")
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
            min_int8_agreement=_MIN_AGREEMENT.value)
    except tflite.Int8AgreementError as e:
        print(summary_table(e.record))
        raise SystemExit(f"\nError: {e}")
    print(f"Exported to {out_dir}\n")
    print(summary_table(tflite.load_record(out_dir)))


if __name__ == "__main__":
    app.run(main)
