"""The model fer ships in fer/assets/model: complete, consistent, and really trained.

The real-data check reads FER+'s validation PNGs and label.csv directly (not through
fer.data), so a wrong label order anywhere between training and the shipped files
shows up as an accuracy collapse.
"""

import csv
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from fer import labels as labels_lib
from fer import spec as spec_lib
from fer.export import runtime
from fer.export import ship

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = spec_lib.SHIPPED_MODEL_DIR
FER_DATA = os.environ.get("FER_DATA", "")


@pytest.fixture(scope="module")
def shipped():
    spec = spec_lib.ModelSpec.load(SHIPPED)
    with open(os.path.join(SHIPPED, "shipped.json")) as f:
        return spec, json.load(f)


def test_shipped_files_are_complete_and_agree(shipped):
    spec, record = shipped
    label_set = labels_lib.get_label_set(spec.label_set)
    assert tuple(spec.labels) == tuple(label_set.labels)
    with open(os.path.join(SHIPPED, "labels.txt")) as f:
        assert f.read().splitlines() == list(spec.labels)
    assert record["labels"] == list(spec.labels)
    size = os.path.getsize(os.path.join(SHIPPED, "model.tflite"))
    assert size == record["bytes"] <= ship.MAX_BYTES
    assert record["run"]["params"] <= 10_000_000
    classifier = runtime.LiteRTClassifier(SHIPPED)
    faces = np.random.default_rng(0).integers(0, 256, (3, *spec.input_shape), np.uint8)
    probs = classifier.predict_probs(faces)
    assert probs.shape == (3, len(spec.labels))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=0.02)


def test_fer_predict_uses_the_shipped_model_by_default(tmp_path):
    from skimage import data as skdata

    photo = tmp_path / "astronaut.jpg"
    assert cv2.imwrite(str(photo), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    env = {k: v for k, v in os.environ.items() if k != "FER_MODEL"}
    out = subprocess.run([sys.executable, "-m", "fer", "predict", str(photo)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    [result] = json.loads(out.stdout)
    assert len(result["faces"]) == 1
    face = result["faces"][0]
    assert face["label"] in labels_lib.CANONICAL
    assert abs(sum(face["probs"].values()) - 1.0) < 0.02


def _ferplus_majority(folder: str):
    """(images, labels) of a FER+ folder as its reference reader scores it: single
    votes dropped, then an emotion with over half of the rest (unknown, NF count)."""
    images, labels = [], []
    with open(os.path.join(folder, "label.csv")) as f:
        for row in csv.reader(f):
            votes = np.array([float(v) for v in row[2:12]])
            votes[votes <= 1] = 0
            winner = int(np.argmax(votes))
            if votes[winner] <= votes.sum() / 2 or winner >= 8:
                continue
            image = cv2.imread(os.path.join(folder, row[0]), cv2.IMREAD_GRAYSCALE)
            if image is None:
                continue
            images.append(image)
            labels.append(winner)
    return np.stack(images)[..., None], np.array(labels)


@pytest.mark.skipif(not FER_DATA, reason="FER_DATA is not set")
def test_shipped_model_scores_what_its_record_says_on_real_ferplus(shipped):
    spec, record = shipped
    folder = os.path.join(FER_DATA, "ferplus", "FER2013Valid")
    assert os.path.isdir(folder), f"FER_DATA={FER_DATA} but {folder} is missing"
    images, labels = _ferplus_majority(folder)
    assert spec.label_set == "ferplus" and spec.input_shape[:2] == images.shape[1:3]
    probs = runtime.LiteRTClassifier(SHIPPED, num_threads=2).predict_probs(images)
    accuracy = float((probs.argmax(axis=1) == labels).mean())
    # The JAX model's validation accuracy, less what quantization may cost.
    assert accuracy >= record["run"]["accuracy"] - 0.01, (accuracy, record["run"])
    assert accuracy > 0.7
    recall = [float((probs[labels == c].argmax(axis=1) == c).mean())
              for c in range(len(spec.labels))]
    balanced = float(np.mean(recall))
    assert balanced >= record["run"]["balanced_accuracy"] - 0.02, (recall, record["run"])


def test_evaluate_mode_scores_the_shipped_model_on_a_test_split(tmp_path):
    """launch.py --mode=evaluate on a FER+ folder that holds FER2013Test."""
    rng = np.random.default_rng(0)
    for folder in ("FER2013Train", "FER2013Valid", "FER2013Test"):
        os.makedirs(tmp_path / "ferplus" / folder)
        rows = []
        for i in range(8):
            name = f"fer{i:07d}.png"
            cv2.imwrite(str(tmp_path / "ferplus" / folder / name),
                        rng.integers(0, 256, (48, 48), np.uint8))
            votes = [0] * 10
            votes[i % 8] = 10
            rows.append([name, "(0, 0, 48, 48)", *votes])
        with open(tmp_path / "ferplus" / folder / "label.csv", "w", newline="") as f:
            csv.writer(f).writerows(rows)
    env = dict(os.environ, JAX_PLATFORMS="cpu", FER_TFDS_DIR=str(tmp_path / "tfds"))
    out = subprocess.run(
        [sys.executable, os.path.join(REPO, "launch.py"), "--mode=evaluate",
         f"--config.checkpoint={SHIPPED}", "--config.dataset=ferplus",
         f"--config.data_dir={tmp_path / 'ferplus'}", "--config.split=test",
         f"--config.tfds_dir={tmp_path / 'tfds'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    with open(tmp_path / "runs" / "shipped_model" / "eval_test_model" / "report.json") as f:
        report = json.load(f)
    assert report["split"] == "test" and report["num_examples"] == 8
    assert report["labels"] == list(labels_lib.get_label_set("ferplus").labels)
