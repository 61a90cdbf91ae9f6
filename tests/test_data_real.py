"""Integration: build the real FER+ and FER2013 from $FER_DATA and check the published counts.

Skipped when FER_DATA is unset. When it is set (CI sets it), missing data is a
failure, not a skip: a CI that silently stopped reading real data would pass forever.
Builds go to a tmp dir of this test session (about 40 s for both on 2 cores).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import configs.default as default_config
from fer import labels as labels_lib
from fer.data import builders
from fer.data import input_pipeline as ip

FER_DATA = os.environ.get("FER_DATA", "")

pytestmark = pytest.mark.skipif(not FER_DATA, reason="FER_DATA is not set")

# FER+ per class, in FER+ label order: neutral, happiness, surprise, sadness, anger,
# disgust, fear, contempt. Training: by plurality vote (ties and unknown/NF winners left
# out); validation: by the reference reader's majority (single votes dropped, then over
# half of the rest), 3,191 faces where plurality keeps 3,396.
FERPLUS_MAJORITY = {
    "train": [9360, 7408, 3368, 3418, 2395, 175, 651, 165],
    "validation": [1180, 862, 411, 348, 289, 25, 60, 16],
}
FERPLUS_IMAGES = {"train": 28558, "validation": 3579}
# The published FER2013 counts, label order Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral.
FER2013_COUNTS = {
    "train": [3995, 436, 4097, 7215, 4830, 3171, 4965],        # Training
    "validation": [467, 56, 496, 895, 653, 415, 607],          # PublicTest
}


@pytest.fixture(scope="session")
def real_tfds_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("real_tfds"))


def real_config(dataset: str, tfds_dir: str):
    config = default_config.get_config()
    config.dataset, config.data_dir, config.tfds_dir = dataset, "", tfds_dir
    return config


def test_fer_data_holds_both_datasets():
    for name, expected in (("ferplus", "FER2013Train"), ("fer2013", "fer2013.csv")):
        path = os.path.join(FER_DATA, name)
        assert os.path.isdir(path), f"FER_DATA={FER_DATA} but {path} is missing"
        assert any(entry.startswith(expected) for entry in os.listdir(path)), (
            f"{path} lacks {expected}*")


def test_ferplus_matches_the_published_counts(real_tfds_dir):
    built = builders.prepare("ferplus", tfds_dir=real_tfds_dir)  # data_dir from $FER_DATA.
    assert {"train", "validation"} <= set(built.splits)
    for split, n in FERPLUS_IMAGES.items():
        assert len(built.metadata(split)["label"]) == n
    assert built.skipped()["num_skipped"] == 0
    info = ip.get_dataset_info(real_config("ferplus", real_tfds_dir))
    assert info.label_set == labels_lib.FERPLUS
    for split, counts in FERPLUS_MAJORITY.items():
        np.testing.assert_array_equal(info.class_counts[split], counts, err_msg=split)


def test_fer2013_matches_the_published_counts(real_tfds_dir):
    built = builders.prepare("fer2013", tfds_dir=real_tfds_dir)
    assert {"train", "validation"} <= set(built.splits)
    assert built.skipped()["num_skipped"] == 0
    info = ip.get_dataset_info(real_config("fer2013", real_tfds_dir))
    assert info.label_set == labels_lib.FER2013
    for split, counts in FER2013_COUNTS.items():
        np.testing.assert_array_equal(info.class_counts[split], counts, err_msg=split)
    batch = next(iter(ip.create_split(real_config("fer2013", real_tfds_dir), "validation",
                                      train=False, batch_size=32, seed=0, shard_index=0,
                                      shard_count=1)))
    assert batch["image"].shape == (32, 48, 48, 1) and batch["image"].std() > 0.05
