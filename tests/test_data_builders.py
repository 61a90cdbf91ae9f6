"""TFDS builders, built from tiny fixtures in each publisher's exact layout.

Each fixture holds good examples plus the bad data the builders must survive: a
malformed row, a corrupt image, a missing image. Builds go to a tmp dir per test
module (one TF import, a second or so per build).
"""

from __future__ import annotations

import csv
import gzip
import json
import os

import cv2
import numpy as np
import pytest

import configs.default as default_config
from fer import labels as labels_lib
from fer.data import builders
from fer.data import input_pipeline as ip
from fer.data import pack
from fer.data import sources


def gray(seed: int, size: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)


def write_image(path: str, image: np.ndarray) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, image)


def write_corrupt(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n this is not an image")


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


def config_for(dataset: str, data_dir, tfds_dir: str, **overrides):
    config = default_config.get_config()
    config.dataset, config.data_dir, config.tfds_dir = dataset, str(data_dir), tfds_dir
    for key, value in overrides.items():
        config[key] = value
    return config


# ----------------------------------------------------------------------------
# FER+.

# Votes (neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF).
FERPLUS_TRAIN_VOTES = [
    [10, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # neutral
    [6, 4, 0, 0, 0, 0, 0, 0, 0, 0],   # neutral
    [0, 9, 1, 0, 0, 0, 0, 0, 0, 0],   # happiness
    [0, 0, 7, 0, 0, 0, 3, 0, 0, 0],   # surprise
    [1, 0, 0, 5, 4, 0, 0, 0, 0, 0],   # sadness
    [0, 0, 0, 0, 0, 0, 0, 6, 4, 0],   # contempt
    [5, 5, 0, 0, 0, 0, 0, 0, 0, 0],   # tied: dropped in majority mode
    [2, 0, 0, 0, 0, 0, 0, 0, 8, 0],   # unknown wins: dropped
    [0, 0, 0, 0, 0, 0, 0, 0, 1, 9],   # not a face: dropped
    [0, 0, 0, 0, 3, 0, 6, 0, 0, 0],   # fear (sums to 9, as one real row does)
]
# Scored by FER+'s reference majority: single votes dropped, then over half of the rest.
FERPLUS_VALID_VOTES = [
    [0, 0, 0, 0, 8, 2, 0, 0, 0, 0],   # anger
    [0, 10, 0, 0, 0, 0, 0, 0, 0, 0],  # happiness
    [1, 1, 1, 4, 0, 0, 0, 0, 0, 3],   # sadness: 4 of the 7 votes left
    [0, 0, 0, 4, 3, 0, 0, 0, 0, 3],   # plurality sadness, no majority: dropped
    [0, 0, 0, 0, 0, 0, 4, 0, 3, 3],   # plurality fear, unknown + NF outvote it: dropped
]


@pytest.fixture(scope="module")
def ferplus_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("ferplus")
    rows = {"FER2013Train": FERPLUS_TRAIN_VOTES,
            "FER2013Valid": FERPLUS_VALID_VOTES}
    for folder, votes_list in rows.items():
        lines = []
        for i, votes in enumerate(votes_list):
            name = f"fer{i:07d}.png"
            write_image(str(root / folder / name), gray(i + 100 * len(folder)))
            lines.append([name, "(0, 0, 48, 48)", *votes])
        if folder == "FER2013Train":
            write_corrupt(str(root / folder / "fer0000099.png"))
            lines.append(["fer0000099.png", "(0, 0, 48, 48)", 10, 0, 0, 0, 0, 0, 0, 0, 0, 0])
            lines.append(["fer0000098.png", "(0, 0, 48, 48)", 10, 0, 0, 0, 0, 0, 0, 0, 0, 0])
            lines.append(["fer0000001.png", "(0, 0, 48, 48)", 1, 2, 3])  # Malformed.
        with open(root / folder / "label.csv", "w", newline="") as f:
            csv.writer(f).writerows(lines)
    return root


def test_ferplus_build_counts_labels_votes_and_skips(ferplus_dir, tfds_dir):
    built = builders.prepare("ferplus", data_dir=str(ferplus_dir), tfds_dir=tfds_dir)
    assert built.splits == ["train", "validation"]  # No FER2013Test folder: no test split.
    assert built.label_set == labels_lib.FERPLUS
    train = built.metadata("train")
    assert len(train["label"]) == len(FERPLUS_TRAIN_VOTES)
    by_votes = sorted(map(tuple, train["votes"].tolist()))
    assert by_votes == sorted(map(tuple, FERPLUS_TRAIN_VOTES))
    skipped = built.skipped()
    assert skipped["num_skipped"] == 3
    reasons = " ".join(f"{s['name']} {s['reason']}" for s in skipped["skipped"])
    assert "fer0000099.png" in reasons and "corrupt" in reasons
    assert "fer0000098.png" in reasons and "label.csv:13" in reasons
    assert os.path.exists(os.path.join(built.data_dir, "skipped.json"))

    info = ip.get_dataset_info(config_for("ferplus", ferplus_dir, tfds_dir))
    # Training: plurality, ties and unknown / NF winners dropped. Scoring: the majority.
    np.testing.assert_array_equal(info.class_counts["train"], [2, 1, 1, 1, 0, 0, 1, 1])
    np.testing.assert_array_equal(info.class_counts["validation"], [0, 1, 0, 1, 1, 0, 0, 0])


def test_ferplus_scoring_follows_the_reference_majority_and_training_the_plurality():
    valid = np.array(FERPLUS_VALID_VOTES)
    np.testing.assert_array_equal(sources.ferplus_majority(valid), [4, 1, 3, -1, -1])
    np.testing.assert_array_equal(sources.ferplus_plurality(valid), [4, 1, 3, 3, 6])
    train = np.array(FERPLUS_TRAIN_VOTES)
    plurality = [0, 0, 1, 2, 3, 7, -1, -1, -1, 6]
    np.testing.assert_array_equal(sources.ferplus_plurality(train), plurality)
    np.testing.assert_array_equal(sources.ferplus_split_labels("train", train), plurality)
    np.testing.assert_array_equal(sources.ferplus_split_labels("test", valid), [4, 1, 3, -1, -1])
    # An emotion exactly half of the votes is no majority; a lone vote never counts.
    np.testing.assert_array_equal(
        sources.ferplus_majority(np.array([[5, 0, 0, 0, 0, 0, 0, 0, 5, 0],
                                           [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]])), [-1, -1])
    with pytest.raises(ValueError, match="votes of shape"):
        sources.ferplus_majority(np.zeros((2, 8)))


def test_ferplus_probability_targets_are_the_votes(ferplus_dir, tfds_dir):
    config = config_for("ferplus", ferplus_dir, tfds_dir, label_mode="probability")
    batch = next(iter(ip.create_split(config, "train", train=False, batch_size=16, seed=0,
                                      shard_index=0, shard_count=1)))
    valid = batch["mask"] == 1
    targets = batch["target"][valid]
    np.testing.assert_allclose(targets.sum(1), 1.0, atol=1e-6)
    expected = {tuple(np.round(sources.vote_distribution(np.array(v)), 4))
                for v in FERPLUS_TRAIN_VOTES
                if sources.ferplus_plurality(np.array([v]))[0] >= 0}
    assert {tuple(np.round(t, 4)) for t in targets} == expected
    # The split's votes, record by record, are the targets training reads (their sum is
    # the logit-adjusted loss's prior, fer.training.train.training_prior).
    split = ip.load_dataset(config).split("train")
    np.testing.assert_allclose(split.votes, [r["votes"] for r in
                                             (split.source[i] for i in range(len(split.labels)))])
    np.testing.assert_allclose(ip.get_dataset_info(config).vote_mass["train"],
                               split.votes.sum(axis=0), rtol=1e-6)
    # The image bytes survive the build: a stored image equals its PNG.
    assert batch["image"].shape == (16, 48, 48, 1)


def test_ferplus_missing_layout_names_the_expected_folders(tmp_path, tfds_dir):
    (tmp_path / "somewhere").mkdir()
    with pytest.raises(builders.LayoutError, match="FER2013Train"):
        builders.prepare("ferplus", data_dir=str(tmp_path / "somewhere"), tfds_dir=tfds_dir)
    (tmp_path / "somewhere" / "FER2013Valid").mkdir()
    with pytest.raises(builders.LayoutError, match="label.csv"):
        builders.prepare("ferplus", data_dir=str(tmp_path / "somewhere"), tfds_dir=tfds_dir)
    with pytest.raises(builders.LayoutError, match="does not exist"):
        builders.prepare("ferplus", data_dir=str(tmp_path / "nowhere"), tfds_dir=tfds_dir)


def test_builds_are_keyed_by_raw_folder(ferplus_dir, tmp_path, tfds_dir):
    other = tmp_path / "other_ferplus"
    folder = other / "FER2013Valid"
    write_image(str(folder / "a.png"), gray(1))
    with open(folder / "label.csv", "w", newline="") as f:
        csv.writer(f).writerow(["a.png", "(0, 0, 48, 48)", 0, 0, 10, 0, 0, 0, 0, 0, 0, 0])
    first = builders.prepare("ferplus", data_dir=str(ferplus_dir), tfds_dir=tfds_dir)
    second = builders.prepare("ferplus", data_dir=str(other), tfds_dir=tfds_dir)
    assert first.data_dir != second.data_dir
    assert second.splits == ["validation"]
    assert first.splits == ["train", "validation"]
    assert second.data_dir.startswith(second.root)
    with open(os.path.join(second.root, "source.json")) as f:
        assert json.load(f)["manual_dir"] == str(other)


# ----------------------------------------------------------------------------
# FER2013.

def fer2013_row(emotion, usage, seed, n_pixels=2304):
    pixels = " ".join(map(str, gray(seed).ravel()[:n_pixels]))
    return [emotion, pixels, usage]


@pytest.fixture(scope="module")
def fer2013_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("fer2013")
    rows = [fer2013_row(e, "Training", i) for i, e in enumerate([0, 3, 3, 6, 1, 2, 4, 5])]
    rows += [fer2013_row(e, "PublicTest", 50 + i) for i, e in enumerate([3, 6, 0])]
    rows.insert(3, fer2013_row(3, "Training", 99, n_pixels=2000))  # Malformed: short.
    rows.insert(5, ["4", "1 2 3"])  # Malformed: a column missing.
    with gzip.open(root / "fer2013.csv.gz", "wt", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["emotion", "pixels", "Usage"])
        writer.writerows(rows)
    return root


def test_fer2013_builds_the_usages_present(fer2013_dir, tfds_dir):
    built = builders.prepare("fer2013", data_dir=str(fer2013_dir), tfds_dir=tfds_dir)
    assert built.splits == ["train", "validation"]
    assert built.label_set == labels_lib.FER2013
    np.testing.assert_array_equal(np.bincount(built.metadata("train")["label"], minlength=7),
                                  [1, 1, 1, 2, 1, 1, 1])
    np.testing.assert_array_equal(np.bincount(built.metadata("validation")["label"],
                                              minlength=7), [1, 0, 0, 1, 0, 0, 1])
    skipped = built.skipped()["skipped"]
    assert sorted(s["name"] for s in skipped) == [
        str(fer2013_dir / "fer2013.csv.gz:5"), str(fer2013_dir / "fer2013.csv.gz:7")]
    # Pixels arrive intact, row-major.
    config = config_for("fer2013", fer2013_dir, tfds_dir)
    batch = next(iter(ip.create_split(config, "validation", train=False, batch_size=8,
                                      seed=0, shard_index=0, shard_count=1)))
    stored = {np.round(batch["image"][i, ..., 0] * 255).astype(np.uint8).tobytes()
              for i in range(3)}
    assert stored == {gray(50 + i).tobytes() for i in range(3)}
    assert batch["mask"].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]


def test_fer2013_label_outside_vocabulary_names_file_and_row(tmp_path, tfds_dir):
    with open(tmp_path / "fer2013.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["emotion", "pixels", "Usage"])
        writer.writerow(fer2013_row(3, "Training", 1))
        writer.writerow(fer2013_row(7, "Training", 2))
    with pytest.raises(builders.LabelError, match=r"fer2013\.csv row 3: emotion 7"):
        builders.prepare("fer2013", data_dir=str(tmp_path), tfds_dir=tfds_dir)


def test_fer2013_wrong_header_and_missing_file(tmp_path, tfds_dir):
    (tmp_path / "empty").mkdir()
    with pytest.raises(builders.LayoutError, match="fer2013.csv"):
        builders.prepare("fer2013", data_dir=str(tmp_path / "empty"), tfds_dir=tfds_dir)
    (tmp_path / "bad").mkdir()
    with open(tmp_path / "bad" / "fer2013.csv", "w") as f:
        f.write("label,image\n1,2\n")
    with pytest.raises(builders.LayoutError, match="emotion,pixels,Usage"):
        builders.prepare("fer2013", data_dir=str(tmp_path / "bad"), tfds_dir=tfds_dir)


# ----------------------------------------------------------------------------
# AffectNet.

AFFECTNET_HEADER = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                    "facial_landmarks", "expression", "valence", "arousal"]
PER_CLASS_TRAIN = 20


@pytest.fixture(scope="module")
def affectnet_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("affectnet")
    images = root / "Manually_Annotated_Images"

    def row(name, code, box=(10, 10, 60, 60)):
        return [name, *box, "1;2;3;4", code, 0.25, -0.5]

    train = []
    for code in range(8):
        for j in range(PER_CLASS_TRAIN):
            name = f"{code}/{code}_{j}.jpg"
            write_image(str(images / name), gray(1000 + 100 * code + j, 80))
            train.append(row(name, code))
    for code in (8, 9, 10):  # None, Uncertain, Non-Face: pruned.
        name = f"9/dropped_{code}.jpg"
        write_image(str(images / name), gray(code, 80))
        train.append(row(name, code))
    write_corrupt(str(images / "9" / "corrupt.jpg"))
    train.append(row("9/corrupt.jpg", 1))
    train.append(row("9/missing.jpg", 2))
    train.append(["9/short.jpg", 1, 2])  # Malformed.
    validation = []
    for code in range(8):
        for j in range(3):
            name = f"val/{code}_{j}.png"
            write_image(str(images / name), gray(5000 + 10 * code + j, 70))
            validation.append(row(name, code, box=(-5, 0, 200, 50)))  # Clipped to the image.
    for file_name, rows in (("training.csv", train), ("validation.csv", validation)):
        with open(root / file_name, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(AFFECTNET_HEADER)
            writer.writerows(rows)
    return root


def test_affectnet_prunes_crops_and_skips(affectnet_dir, tfds_dir):
    built = builders.prepare("affectnet", data_dir=str(affectnet_dir), tfds_dir=tfds_dir,
                             image_size=64)
    assert built.splits == ["train", "validation"]
    assert built.builder.builder_config.name == "gray64"
    np.testing.assert_array_equal(np.bincount(built.metadata("train")["label"]),
                                  [PER_CLASS_TRAIN] * 8)
    np.testing.assert_array_equal(np.bincount(built.metadata("validation")["label"]), [3] * 8)
    report = built.skipped()
    assert report["dropped"] == {"train": {"none": 1, "uncertain": 1, "non-face": 1}}
    names = " ".join(s["name"] for s in report["skipped"])
    assert report["num_skipped"] == 3
    assert "corrupt.jpg" in names and "missing.jpg" in names and "training.csv:" in names
    # The stored face is the crop of the box, resized.
    record = sources.TfdsSource(built.builder, "train")[0]
    assert record["image"].shape == (64, 64, 1)
    example = built.builder.as_data_source("train")[0]
    file_name = example["file_name"].decode()
    code, _ = map(int, os.path.basename(file_name)[:-4].split("_"))
    source = cv2.imread(str(affectnet_dir / "Manually_Annotated_Images" / file_name),
                        cv2.IMREAD_GRAYSCALE)
    expected = cv2.resize(source[10:70, 10:70], (64, 64), interpolation=cv2.INTER_LINEAR)
    assert np.abs(record["image"][..., 0].astype(int) - expected).mean() < 1.0
    assert example["label"] == code


def test_affectnet_protocols(affectnet_dir, tfds_dir):
    base = dict(image_size=64)
    official = ip.get_dataset_info(config_for("affectnet", affectnet_dir, tfds_dir, **base))
    assert official.num_examples == {"train": 160, "validation": 24, "test": 24}
    reduced = ip.get_dataset_info(config_for("affectnet", affectnet_dir, tfds_dir,
                                             affectnet_reduced=True, **base))
    np.testing.assert_array_equal(reduced.class_counts["train"], [2] * 8)  # 10% per class.
    assert reduced.num_examples["validation"] == 24
    seed_random = ip.get_dataset_info(config_for(
        "affectnet", affectnet_dir, tfds_dir, affectnet_protocol="seed_random", **base))
    assert seed_random.num_examples["train"] + seed_random.num_examples["validation"] == 184
    assert seed_random.num_examples["validation"] == round(0.1 * 184)
    with pytest.raises(ValueError, match="affectnet_protocol"):
        ip.get_dataset_info(config_for("affectnet", affectnet_dir, tfds_dir,
                                       affectnet_protocol="kfold", **base))


def test_affectnet_expression_outside_codes_is_an_error(tmp_path, tfds_dir):
    write_image(str(tmp_path / "Manually_Annotated_Images" / "1" / "a.jpg"), gray(1, 64))
    with open(tmp_path / "validation.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(AFFECTNET_HEADER)
        writer.writerow(["1/a.jpg", 0, 0, 64, 64, "", 12, 0, 0])
    with pytest.raises(builders.LabelError, match=r"validation\.csv row 2: expression 12"):
        builders.prepare("affectnet", data_dir=str(tmp_path), tfds_dir=tfds_dir)


def test_affectnet_layout_errors(tmp_path, tfds_dir):
    with pytest.raises(builders.LayoutError, match="Manually_Annotated_Images"):
        builders.prepare("affectnet", data_dir=str(tmp_path), tfds_dir=tfds_dir)
    (tmp_path / "Manually_Annotated_Images").mkdir()
    with pytest.raises(builders.LayoutError, match="training.csv"):
        builders.prepare("affectnet", data_dir=str(tmp_path), tfds_dir=tfds_dir)


def test_stratified_subset_proportions():
    labels = np.repeat(np.arange(5), [1000, 300, 50, 7, 1])
    chosen = sources.stratified_subset(labels, 0.1, seed=0)
    np.testing.assert_array_equal(np.bincount(labels[chosen]), [100, 30, 5, 1, 1])
    assert len(set(chosen.tolist())) == len(chosen)
    np.testing.assert_array_equal(chosen, sources.stratified_subset(labels, 0.1, seed=0))
    train, test = sources.random_split(1358, 0.1, seed=0)
    assert len(test) == 136 and not set(train) & set(test) and len(train) + len(test) == 1358


# ----------------------------------------------------------------------------
# Image folders.

@pytest.fixture(scope="module")
def image_folder_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("image_folder")
    for i in range(3):
        write_image(str(root / "train" / "happy" / f"h{i}.jpg"), gray(i))
    for i in range(2):
        write_image(str(root / "train" / "Angry" / f"a{i}.png"), gray(10 + i, 64))
    write_image(str(root / "train" / "neutral" / "n0.png"), np.dstack([gray(20)] * 3))
    write_corrupt(str(root / "train" / "neutral" / "broken.jpg"))
    (root / "train" / "neutral" / "notes.txt").write_text("not an image")
    write_image(str(root / "test" / "sad" / "s0.jpg"), gray(30))
    write_image(str(root / "test" / "surprise" / "u0.jpg"), gray(31))
    return root


def test_image_folder_maps_class_names_through_the_label_module(image_folder_dir, tfds_dir):
    built = builders.prepare("image_folder", data_dir=str(image_folder_dir), tfds_dir=tfds_dir)
    assert built.label_set == labels_lib.FER2013
    assert built.splits == ["train", "test"]
    fer = labels_lib.FER2013
    train = np.bincount(built.metadata("train")["label"], minlength=7)
    assert train[fer.index("happy")] == 3 and train[fer.index("anger")] == 2
    assert train[fer.index("neutral")] == 1 and train.sum() == 6
    test = np.bincount(built.metadata("test")["label"], minlength=7)
    assert test[fer.index("sad")] == 1 and test[fer.index("surprise")] == 1
    assert [s["name"].endswith("broken.jpg") for s in built.skipped()["skipped"]] == [True]


def test_image_folder_with_contempt_uses_the_8_class_set(tmp_path, tfds_dir):
    write_image(str(tmp_path / "train" / "contempt" / "c.png"), gray(1))
    write_image(str(tmp_path / "train" / "happiness" / "h.png"), gray(2))
    built = builders.prepare("image_folder", data_dir=str(tmp_path), tfds_dir=tfds_dir)
    assert built.label_set == labels_lib.AFFECTNET
    assert sorted(built.metadata("train")["label"].tolist()) == sorted(
        [labels_lib.AFFECTNET.index("contempt"), labels_lib.AFFECTNET.index("happy")])


def test_image_folder_unknown_class_and_missing_splits(tmp_path, tfds_dir):
    write_image(str(tmp_path / "a" / "train" / "bored" / "b.png"), gray(1))
    with pytest.raises(builders.LabelError, match="bored"):
        builders.prepare("image_folder", data_dir=str(tmp_path / "a"), tfds_dir=tfds_dir)
    write_image(str(tmp_path / "b" / "happy" / "h.png"), gray(1))
    with pytest.raises(builders.LayoutError, match="train/<class>/"):
        builders.prepare("image_folder", data_dir=str(tmp_path / "b"), tfds_dir=tfds_dir)


def test_no_data_dir_and_no_fer_data_is_a_clear_error(monkeypatch, tfds_dir):
    monkeypatch.delenv("FER_DATA", raising=False)
    with pytest.raises(builders.LayoutError, match="config.data_dir"):
        builders.prepare("ferplus", data_dir="", tfds_dir=tfds_dir)


def test_build_ahead_command_prints_counts_and_skips(ferplus_dir, tfds_dir, capsys):
    from fer.data.builders import __main__ as build_cli  # noqa: PLC0415

    assert build_cli.main(["ferplus", "--data_dir", str(ferplus_dir),
                           "--tfds_dir", tfds_dir]) == 0
    out = capsys.readouterr().out
    assert "train: 10 records" in out and "the split keeps 7" in out
    assert "validation: 5 records" in out and "the split keeps 3" in out
    assert "skipped: 3" in out and "fer0000099.png" in out
    assert ("per split and reason {'train': {'corrupt or undecodable image': 1, "
            "'malformed row': 1, 'missing image': 1}}") in out


# ----------------------------------------------------------------------------
# Packs (fer.data.pack): a build in one file, read without TFDS.

def _records(dataset, split):
    source = dataset.split(split).source
    return [source[i] for i in range(len(source))]


def test_pack_serves_what_the_build_serves(ferplus_dir, tfds_dir, tmp_path):
    built = builders.prepare("ferplus", data_dir=str(ferplus_dir), tfds_dir=tfds_dir)
    out = str(tmp_path / "ferplus.npz")
    header = pack.write("ferplus", built, out, progress=False)
    assert header["splits"] == {"train": len(FERPLUS_TRAIN_VOTES),
                                "validation": len(FERPLUS_VALID_VOTES)}
    from_build = sources.load(config_for("ferplus", ferplus_dir, tfds_dir))
    from_pack = sources.load(config_for("ferplus", out, tfds_dir))
    assert from_pack.label_set == labels_lib.FERPLUS
    assert list(from_pack.splits) == list(from_build.splits)
    for split in from_build.splits:  # Vote filtering, labels, votes, pixels: identical.
        np.testing.assert_array_equal(from_pack.split(split).labels,
                                      from_build.split(split).labels)
        for a, b in zip(_records(from_pack, split), _records(from_build, split)):
            np.testing.assert_array_equal(a["image"], b["image"])
            np.testing.assert_allclose(a["votes"], b["votes"])
            assert a["label"] == b["label"]
    # The training pipeline reads a pack through the config alone.
    info = ip.get_dataset_info(config_for("ferplus", out, tfds_dir))
    np.testing.assert_array_equal(info.class_counts["train"], [2, 1, 1, 1, 0, 0, 1, 1])


def test_pack_of_another_dataset_or_label_order_is_refused(ferplus_dir, tfds_dir, tmp_path,
                                                          monkeypatch):
    built = builders.prepare("ferplus", data_dir=str(ferplus_dir), tfds_dir=tfds_dir)
    out = str(tmp_path / "ferplus.npz")
    pack.write("ferplus", built, out, progress=False)
    with pytest.raises(ValueError, match="pack of 'ferplus'.*dataset is 'fer2013'"):
        pack.read(out, "fer2013")
    # A pack made when the label order was different must not be read in today's order.
    shuffled = labels_lib.LabelSet("ferplus", tuple(reversed(labels_lib.FERPLUS.labels)))
    monkeypatch.setattr(built, "label_set", shuffled)
    pack.write("ferplus", built, out, progress=False)
    with pytest.raises(ValueError, match="remake the pack"):
        pack.read(out, "ferplus")
    with pytest.raises(FileNotFoundError, match="python -m fer.data.pack"):
        pack.read(str(tmp_path / "missing.npz"), "ferplus")
    assert pack.is_pack(out) and not pack.is_pack(str(ferplus_dir))


def test_pack_command_writes_a_pack(ferplus_dir, tfds_dir, tmp_path, capsys, usage_error):
    out = str(tmp_path / "p.npz")
    assert pack.main(["ferplus", "--data_dir", str(ferplus_dir), "--tfds_dir", tfds_dir,
                      "--out", out]) == 0
    assert "ferplus {'train': 10, 'validation': 5}" in capsys.readouterr().out
    with usage_error(r"--out must end in \.npz, got '.*p\.zip'"):
        pack.main(["ferplus", "--data_dir", str(ferplus_dir), "--out", str(tmp_path / "p.zip")])
