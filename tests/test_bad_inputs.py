"""Bad data and bad settings (issue 25): each case ends in a clear error naming the
file, row or field, or in a skip with its reason; nothing is repaired silently.

Builds go to a tmp dir per test; the launch.py cases run its real command line in a
subprocess and check for one clear line, a non-zero exit and no traceback.
"""

from __future__ import annotations

import csv
import gzip
import json
import numbers
import os
import pkgutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

import configs
import configs.default as default_config
from fer import labels as labels_lib
from fer.data import builders
from fer.data import errors
from fer.data import input_pipeline as ip
from fer.training import config_check

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOOD_VOTES = [10, 0, 0, 0, 0, 0, 0, 0, 0, 0]


def _launch(argv, cwd, timeout=300):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, os.path.join(REPO, "launch.py"), *argv], cwd=cwd,
                         env=env, capture_output=True, text=True, timeout=timeout)
    return out.returncode, out.stdout + out.stderr


def _gray(seed: int, shape=(48, 48)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _ferplus(root, rows, images=None) -> str:
    """A FER2013Train/ with `rows` in label.csv and an image per named file."""
    folder = root / "FER2013Train"
    folder.mkdir(parents=True)
    images = images or {}
    for i, row in enumerate(rows):
        name = row[0]
        if name not in images and not (folder / name).exists():
            assert cv2.imwrite(str(folder / name), _gray(i))
    for name, image in images.items():
        assert cv2.imwrite(str(folder / name), image)
    with open(folder / "label.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return str(root)


def _reasons(built) -> dict[str, str]:
    return {s["name"]: s["reason"] for s in built.skipped()["skipped"]}


# ----------------------------------------------------------------------------
# FER+: votes, duplicates, image sizes, nothing left.

def test_ferplus_bad_votes_are_skipped_with_file_row_and_reason(tmp_path, capsys):
    rows = [["a.png", "(0, 0, 48, 48)", *GOOD_VOTES],
            ["b.png", "(0, 0, 48, 48)", "inf", 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ["c.png", "(0, 0, 48, 48)", "1e12", 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ["d.png", "(0, 0, 48, 48)", "1.7", 8, 0, 0, 0, 0, 0, 0, 0, 0],
            ["e.png", "(0, 0, 48, 48)", 999, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ["f.png", "(0, 0, 48, 48)", "nan", 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ["g.png", "(0, 0, 48, 48)", -1, 5, 0, 0, 0, 0, 0, 0, 0, 0]]
    data = _ferplus(tmp_path / "ferplus", rows)
    built = builders.prepare("ferplus", data_dir=data, tfds_dir=str(tmp_path / "tfds"))
    assert len(built.metadata("train")["label"]) == 1  # Only a.png; nothing truncated.
    label_csv = os.path.join(data, "FER2013Train", "label.csv")
    reasons = _reasons(built)
    assert sorted(reasons) == [f"{label_csv}:{n}" for n in range(2, 8)]
    assert all(r.startswith("bad votes: ") for r in reasons.values())
    assert "total 999" in reasons[f"{label_csv}:5"]
    assert "'1.7'" in reasons[f"{label_csv}:4"]
    assert built.skipped()["counts"] == {"train": {"bad votes": 6}}
    assert "'train': {'bad votes': 6}" in capsys.readouterr().out  # Printed at build time.


def test_ferplus_duplicate_image_conflicting_votes_is_skipped_agreeing_kept_once(tmp_path):
    other = [0, 10, 0, 0, 0, 0, 0, 0, 0, 0]
    rows = [["a.png", "(0, 0, 48, 48)", *GOOD_VOTES],
            ["b.png", "(0, 0, 48, 48)", *GOOD_VOTES],
            ["a.png", "(0, 0, 48, 48)", *other],     # Conflicts with row 1.
            ["b.png", "(0, 0, 48, 48)", *GOOD_VOTES],  # Repeats row 2.
            ["c.png", "(0, 0, 48, 48)", *other]]
    data = _ferplus(tmp_path / "ferplus", rows)
    built = builders.prepare("ferplus", data_dir=data, tfds_dir=str(tmp_path / "tfds"))
    np.testing.assert_array_equal(sorted(built.metadata("train")["label"]), [0, 1])  # b, c.
    label_csv = os.path.join(data, "FER2013Train", "label.csv")
    reasons = _reasons(built)
    assert sorted(reasons) == [f"{label_csv}:{n}" for n in (1, 3, 4)]
    assert "a.png in rows [1, 3] with different votes" in reasons[f"{label_csv}:1"]
    assert "b.png repeats row 2" in reasons[f"{label_csv}:4"]


def test_ferplus_image_not_48x48_is_skipped_not_stretched(tmp_path):
    rows = [["a.png", "(0, 0, 48, 48)", *GOOD_VOTES],
            ["wide.png", "(0, 0, 48, 48)", *GOOD_VOTES],
            ["big.png", "(0, 0, 48, 48)", *GOOD_VOTES]]
    data = _ferplus(tmp_path / "ferplus", rows, images={
        "wide.png": _gray(1, (60, 100)), "big.png": _gray(2, (96, 96))})
    built = builders.prepare("ferplus", data_dir=data, tfds_dir=str(tmp_path / "tfds"))
    assert len(built.metadata("train")["label"]) == 1
    folder = os.path.join(data, "FER2013Train")
    reasons = _reasons(built)
    assert reasons[f"{folder}/wide.png (label.csv row 2)"].startswith(
        "wrong image size: 100x60, expected 48x48")
    assert reasons[f"{folder}/big.png (label.csv row 3)"].startswith(
        "wrong image size: 96x96")


def test_ferplus_with_every_row_bad_lists_the_reasons_and_counts(tmp_path):
    folder = tmp_path / "ferplus" / "FER2013Train"
    folder.mkdir(parents=True)
    lines = [f"fer{i}.png,(0, 0, 48, 48),10,0,0,0,0,0,0,0,0,0" for i in range(80)]
    (folder / "label.csv").write_text("\n".join(lines) + "\n")  # Face boxes unquoted.
    with pytest.raises(errors.NothingSurvivedError) as raised:
        builders.prepare("ferplus", data_dir=str(tmp_path / "ferplus"),
                         tfds_dir=str(tmp_path / "tfds"))
    message = str(raised.value)
    assert "80 skipped (malformed row 80)" in message
    assert f"{folder / 'label.csv'}:1: malformed row: expected 12 columns, got 15" in message
    assert "No examples were yielded" not in message


def test_skip_counts_are_read_back_when_a_build_is_reused(tmp_path):
    rows = [["a.png", "(0, 0, 48, 48)", *GOOD_VOTES],
            ["b.png", "(0, 0, 48, 48)", "1.5", 0, 0, 0, 0, 0, 0, 0, 0, 0]]
    data = _ferplus(tmp_path / "ferplus", rows)
    tfds_dir = str(tmp_path / "tfds")
    builders.prepare("ferplus", data_dir=data, tfds_dir=tfds_dir)
    again = builders.prepare("ferplus", data_dir=data, tfds_dir=tfds_dir)
    assert again.builder.is_prepared()
    assert again.skipped()["counts"] == {"train": {"bad votes": 1}}
    config = default_config.get_config()
    config.dataset, config.data_dir, config.tfds_dir = "ferplus", data, tfds_dir
    assert ip.get_dataset_info(config).skipped == {"train": {"bad votes": 1}}
    # What launch.py records in report.json for every run on this build.
    code = ("import json, sys; sys.path.insert(0, {repo!r}); "
            "import configs.default as d; c = d.get_config(); "
            "from fer.data import input_pipeline as ip; "
            "from fer.training import provenance as p; "
            "c.dataset, c.data_dir, c.tfds_dir = 'ferplus', {data!r}, {tfds!r}; "
            "print(json.dumps(p.provenance(c, ip.get_dataset_info(c))['skipped']))").format(
                repo=REPO, data=data, tfds=tfds_dir)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, JAX_PLATFORMS="cpu"), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"train": {"bad votes": 1}}


# ----------------------------------------------------------------------------
# FER2013: damaged files, byte-order marks, nothing left.

def _fer2013_rows(n=4, usage="Training"):
    pixels = " ".join(map(str, _gray(0).ravel()))
    return [[i % 7, pixels, usage] for i in range(n)]


def _fer2013_text(rows) -> str:
    lines = ["emotion,pixels,Usage"] + [",".join(map(str, r)) for r in rows]
    return "\r\n".join(lines) + "\r\n"


def _gz(text: str) -> bytes:
    return gzip.compress(text.encode())


def _truncated(data: bytes) -> bytes:
    return data[:len(data) // 2]


def _garbage(data: bytes) -> bytes:
    return b"\x1f\x8b\x08\x00" + bytes(range(256)) * 8


def _bad_crc(data: bytes) -> bytes:
    return data[:-8] + bytes([data[-8] ^ 0xFF]) + data[-7:]


@pytest.mark.parametrize("damage", [_truncated, _garbage, _bad_crc])
def test_fer2013_damaged_gzip_is_an_error_naming_the_file(tmp_path, damage):
    path = tmp_path / "fer2013" / "fer2013.csv.gz"
    path.parent.mkdir()
    path.write_bytes(damage(_gz(_fer2013_text(_fer2013_rows(50)))))
    with pytest.raises(errors.CorruptFileError, match=f"{path} cannot be read"):
        builders.prepare("fer2013", data_dir=str(path.parent),
                         tfds_dir=str(tmp_path / "tfds"))


def test_fer2013_damaged_gzip_through_launch_is_one_line(tmp_path):
    path = tmp_path / "fer2013.csv.gz"
    path.write_bytes(_truncated(_gz(_fer2013_text(_fer2013_rows(50)))))
    code, output = _launch([f"--workdir={tmp_path / 'run'}", "--config.dataset=fer2013",
                            f"--config.data_dir={path}", f"--config.tfds_dir={tmp_path}"],
                           tmp_path)
    assert code == 1 and "Traceback" not in output, output[-3000:]
    assert f"error: {path} cannot be read" in output


def test_fer2013_csv_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "fer2013" / "fer2013.csv"
    path.parent.mkdir()
    path.write_bytes(b"\xef\xbb\xbf" + _fer2013_text(_fer2013_rows(3)).encode())
    built = builders.prepare("fer2013", data_dir=str(path.parent),
                             tfds_dir=str(tmp_path / "tfds"))
    np.testing.assert_array_equal(sorted(built.metadata("train")["label"]), [0, 1, 2])


def test_fer2013_with_every_row_bad_lists_the_reasons_and_counts(tmp_path):
    rows = [[i, "1 2 3", "Training"] for i in range(3)] + [["x", "0", "Training"]]
    path = tmp_path / "fer2013" / "fer2013.csv"
    path.parent.mkdir()
    path.write_text(_fer2013_text(rows))
    with pytest.raises(errors.NothingSurvivedError) as raised:
        builders.prepare("fer2013", data_dir=str(path.parent),
                         tfds_dir=str(tmp_path / "tfds"))
    message = str(raised.value)
    assert "4 skipped (malformed row 4)" in message
    assert f"{path}:2: malformed row: expected 2304 pixels, got 3" in message
    assert f"{path}:5: malformed row: emotion 'x' is not an integer" in message


# ----------------------------------------------------------------------------
# AffectNet and image folders: the same rules.

def test_affectnet_fractional_or_infinite_numbers_are_skipped_not_truncated(tmp_path):
    from fer.data.builders import affectnet

    root = tmp_path / "affectnet"
    (root / affectnet.IMAGES_DIR / "1").mkdir(parents=True)
    rows = [["1/a.jpg", 10, 10, 60, 60, "1;2", 1, 0.2, 0.1],
            ["1/b.jpg", 10, 10, 60, 60, "1;2", "1.7", 0.2, 0.1],
            ["1/c.jpg", "inf", 10, 60, 60, "1;2", 1, 0.2, 0.1],
            ["1/d.jpg", 10, 10, 60, 60, "1;2", 1, "nan", 0.1]]
    for i, row in enumerate(rows):
        assert cv2.imwrite(str(root / affectnet.IMAGES_DIR / row[0]), _gray(i, (80, 80)))
    with open(root / "training.csv", "w", newline="") as f:
        csv.writer(f).writerows([affectnet.COLUMNS, *rows])
    built = builders.prepare("affectnet", data_dir=str(root), tfds_dir=str(tmp_path / "t"))
    assert len(built.metadata("train")["label"]) == 1
    reasons = _reasons(built)
    assert sorted(reasons) == [f"{root / 'training.csv'}:{n}" for n in (3, 4, 5)]
    assert all("not a finite number" in r for r in reasons.values())


def test_image_folder_with_every_image_bad_lists_the_reasons(tmp_path):
    folder = tmp_path / "faces" / "train" / "happy"
    folder.mkdir(parents=True)
    for name in ("a.png", "b.jpg"):
        (folder / name).write_bytes(b"not an image")
    with pytest.raises(errors.NothingSurvivedError,
                       match=r"2 skipped \(corrupt or undecodable image 2\)"):
        builders.prepare("image_folder", data_dir=str(tmp_path / "faces"),
                         tfds_dir=str(tmp_path / "tfds"))


# ----------------------------------------------------------------------------
# Settings: every numeric field of the default config, checked before any work.

BAD_VALUES = {
    "image_size": [0, -48, 4], "channels": [0, 2], "class_weight_power": [-1.0, float("inf")],
    "num_workers": [-1], "seed": [-1], "learning_rate": [0.0, -1.0, float("nan")],
    "momentum": [-0.1, 1.0], "warmup_epochs": [-1.0], "weight_decay": [-0.01, float("inf")],
    "grad_clip_norm": [-1.0], "label_smoothing": [-0.1, 1.0], "batch_size": [-5],
    "distill_weight": [-0.1, 1.5, float("nan")], "logit_adjustment": [-0.5, 2.5],
    "mixup_alpha": [-0.2, 5.0, float("nan")], "logit_adjustment_prior": ["votes", ""],
    "per_device_batch_size": [0, -1], "eval_batch_size": [-1], "epochs": [0, -1],
    "steps_per_epoch": [-1], "log_every_steps": [0], "checkpoint_every_epochs": [0],
    "checkpoint_every_steps": [-1],
    "keep_checkpoints": [0], "augment_max_shift": [-0.1, 0.6],
    "augment_max_rotation": [-1.0, 181.0], "augment_max_scale": [-0.1, 1.0],
    "augment_noise_std": [-0.01, float("nan")],
}


def _numeric_fields(config, prefix=""):
    for key, value in config.items():
        if hasattr(value, "items"):
            yield from _numeric_fields(value, f"{prefix}{key}.")
        elif isinstance(value, numbers.Number) and not isinstance(value, bool):
            yield prefix + key


def test_every_numeric_field_of_the_default_config_has_a_rule_and_a_bad_value():
    fields = set(_numeric_fields(default_config.get_config()))
    assert fields <= set(config_check.RULES), fields - set(config_check.RULES)
    assert fields <= set(BAD_VALUES), fields - set(BAD_VALUES)


@pytest.mark.parametrize("field,value", [(f, v) for f, vs in BAD_VALUES.items() for v in vs])
def test_a_bad_setting_is_one_line_naming_field_and_what_is_valid(field, value):
    config = default_config.get_config()
    config[field] = value
    found = config_check.problems(config)
    assert len(found) == 1 and found[0].startswith(f"config.{field}={value!r}: expected ")


def _shipped_recipes() -> list[str]:
    """Each config file bare, and every past run's argument string."""
    with open(os.path.join(os.path.dirname(__file__), "data", "config_recipes.json")) as f:
        recipes = [recipe["arg"] for recipe in json.load(f).values()]
    bare = [f"configs/{m.name}.py" for m in pkgutil.iter_modules(configs.__path__)]
    return sorted(set(bare + recipes))


@pytest.mark.parametrize("spec", _shipped_recipes())
def test_every_shipped_config_passes(spec):
    assert config_check.problems(configs.load(spec)) == []


def test_warmup_longer_than_training_is_refused():
    config = default_config.get_config()
    config.epochs, config.warmup_epochs = 2, 3.0
    assert config_check.problems(config) == [
        "config.warmup_epochs=3.0: expected at most config.epochs=2 (the warm-up would "
        "never end)"]


@pytest.mark.parametrize("mode", ["train", "evaluate"])
def test_launch_refuses_bad_settings_before_any_data_or_model_work(tmp_path, mode):
    bad = {"epochs": 0, "per_device_batch_size": 0, "batch_size": -5, "eval_batch_size": -1,
           "learning_rate": -1.0, "weight_decay": float("nan"), "image_size": 0,
           "steps_per_epoch": -2}
    argv = [f"--mode={mode}", f"--workdir={tmp_path / 'run'}", "--config.dataset=ferplus",
            f"--config.data_dir={tmp_path / 'no such folder'}"]  # Data would fail too.
    code, output = _launch(argv + [f"--config.{k}={v}" for k, v in bad.items()], tmp_path)
    assert code == 1 and "Traceback" not in output, output[-3000:]
    assert f"error: {len(bad)} bad settings:" in output
    for field, value in bad.items():
        assert f"config.{field}={value!r}: expected" in output
    assert "no such folder" not in output and not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------
# Evaluation across label sets: the 8-class FER+ model on 7-class FER2013.

def test_ferplus_model_on_fer2013_is_scored_through_the_shared_classes(tmp_path):
    rows = [[e, " ".join(map(str, _gray(e).ravel())), "PublicTest"] for e in range(7)]
    rows.append([3, "1 2 3", "PublicTest"])  # Skipped: recorded in the report.
    path = tmp_path / "fer2013.csv"
    path.write_text(_fer2013_text(rows))
    code, output = _launch(
        ["--mode=evaluate", "--config.checkpoint=" + os.path.join(REPO, "fer/assets/model"),
         f"--workdir={tmp_path / 'run'}", "--config.dataset=fer2013",
         f"--config.data_dir={path}", f"--config.tfds_dir={tmp_path / 'tfds'}",
         "--config.split=validation"], tmp_path)
    assert code == 0, output[-3000:]
    reports = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path / "run") for f in fs
               if f == "report.json"]
    assert len(reports) == 1
    report = json.load(open(reports[0]))
    assert report["num_examples"] == 7 and report["labels"] == list(labels_lib.FER2013.labels)
    assert len(report["confusion"]) == 7 and report["label_set"] == "fer2013"
    mapping = report["label_mapping"]
    assert mapping["left_out"] == ["contempt"] and mapping["unscored"] == []
    assert mapping["mapped"]["happiness"] == "happy" and len(mapping["mapped"]) == 7
    assert report["skipped"] == {"validation": {"malformed row": 1}}
    markdown = open(reports[0].replace(".json", ".md")).read()
    assert "left out (probability dropped, the rest renormalised): contempt" in markdown


# ----------------------------------------------------------------------------
# The photo pipeline benchmark skips what the scan skips.

def test_pipeline_benchmark_skips_and_counts_unreadable_photos(tmp_path, capsys):
    from skimage import data as skdata

    from benchmarks import pipeline

    photos = tmp_path / "photos"
    photos.mkdir()
    assert cv2.imwrite(str(photos / "face.jpg"),
                       cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    (photos / "empty.jpg").write_bytes(b"")
    (photos / "cut.jpg").write_bytes((photos / "face.jpg").read_bytes()[:2000])
    out = tmp_path / "bench.json"
    assert pipeline.main([str(photos), "--json", str(out), "--workers", "1"]) == 0
    group = json.load(open(out))["groups"]["."]
    assert group["per_step"]["photos"] == 1
    assert sorted(os.path.basename(p) for p in group["skipped"]) == ["cut.jpg", "empty.jpg"]
    assert group["skipped"][str(photos / "empty.jpg")] == "empty file (0 bytes)"
    assert "1 photos, 2 skipped as the scan skips them" in capsys.readouterr().err
    assert "Skipped 2 unreadable photos" in open(tmp_path / "bench.md").read()
