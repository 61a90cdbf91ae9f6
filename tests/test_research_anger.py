"""research.anger: FER2013's faces found in FER+ by their pixels, then cross-tabulated."""

import gzip

import cv2
import numpy as np

import configs
from fer import labels as labels_lib
from research.anger import __main__ as anger

ANGRY, NEUTRAL = labels_lib.FER2013.index("angry"), labels_lib.FER2013.index("neutral")


def _face(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (48, 48), dtype=np.uint8)


def _votes(winner: str | None) -> list[int]:
    votes = [0] * 10
    if winner is None:  # 4-3-3: no majority under the reference reader.
        votes[0], votes[4], votes[3] = 4, 3, 3
    else:
        votes[labels_lib.FERPLUS.index(winner)] = 8
        votes[0] += 2
    return votes


def _data(tmp_path):
    """FER2013 rows and FER+ folders whose file names are not the rows' numbers."""
    rows = [("Training", ANGRY, 0), ("Training", ANGRY, 1), ("PublicTest", ANGRY, 2),
            ("PublicTest", NEUTRAL, 3), ("Training", NEUTRAL, 4),
            ("Training", NEUTRAL, 4),   # A duplicate pattern: left out.
            ("PrivateTest", ANGRY, 5)]  # A test row: never read.
    (tmp_path / "fer2013").mkdir()
    with gzip.open(tmp_path / "fer2013" / "fer2013.csv.gz", "wt") as f:
        f.write("emotion,pixels,Usage\n")
        for usage, label, seed in rows:
            f.write(f"{label},{' '.join(map(str, _face(seed).ravel()))},{usage}\n")
    verdicts = {"FER2013Train": [(1, "neutral"), (0, "anger"), (4, "neutral")],
                "FER2013Valid": [(3, None), (2, "anger"), (9, "happiness")]}  # 9: no row.
    for folder, faces in verdicts.items():
        (tmp_path / "ferplus" / folder).mkdir(parents=True)
        with open(tmp_path / "ferplus" / folder / "label.csv", "w") as f:
            for i, (seed, winner) in enumerate(faces):
                name = f"fer{1000 - i:07d}.png"
                cv2.imwrite(str(tmp_path / "ferplus" / folder / name), _face(seed))
                f.write(f"{name},\"(0, 0, 48, 48)\",{','.join(map(str, _votes(winner)))}\n")
    return tmp_path


def test_faces_are_matched_by_pixels_and_cross_tabulated(tmp_path):
    root = _data(tmp_path)
    ferplus = {folder: list(anger.ferplus_votes(str(root / "ferplus" / folder)))
               for folder in anger.FER2013_USAGE.values()}
    rows = list(anger.fer2013_faces(str(root / "fer2013" / "fer2013.csv.gz")))
    assert sorted(u for u, _, _ in rows) == ["PublicTest"] * 2 + ["Training"] * 4
    matched = anger.match(rows, ferplus)
    # Faces 0, 1, 2, 3 match across names; face 4 is in FER2013 twice (left out of both
    # counts there, unmatched in FER+); face 9 is only in FER+.
    assert len(matched["fer2013"]) == 4
    assert matched["unmatched"] == {"fer2013": 0, "ferplus": 2}
    table = anger.crosstab(matched["fer2013"], matched["ferplus"])
    assert table["angry"]["anger"] == 2 and table["angry"]["neutral"] == 1
    assert table["neutral"][anger.NO_MAJORITY] == 1 and sum(table["happy"].values()) == 0


def test_verdict_groups_report_what_the_model_predicts():
    fer2013 = np.array([ANGRY, ANGRY, ANGRY, NEUTRAL])
    ferplus = np.array([labels_lib.FERPLUS.index("anger"), labels_lib.FERPLUS.index("anger"),
                        labels_lib.FERPLUS.index("neutral"), labels_lib.FERPLUS.index("anger")])
    probs = np.full((4, 8), 0.01)
    probs[[0, 2, 3], labels_lib.FERPLUS.index("anger")] = 0.9
    probs[1, labels_lib.FERPLUS.index("neutral")] = 0.9
    rows = {r["ferplus"]: r for r in anger.by_verdict(fer2013, ferplus, probs)}
    assert set(rows) == {"anger", "neutral"}  # The neutral FER2013 face is not counted.
    assert rows["anger"]["faces"] == 2 and rows["anger"]["predicted_anger"] == 0.5
    assert rows["anger"]["predicted"] == {"neutral": 1, "anger": 1}
    assert rows["neutral"]["predicted_anger"] == 1.0
    assert "| anger | 2 | 50.0 |" in anger.markdown({
        "matched": 4, "unmatched": {"fer2013": 0, "ferplus": 0}, "model": "m",
        "split": "PublicTest", "crosstab": anger.crosstab(fer2013, ferplus),
        "angry_by_verdict": list(rows.values())})


def test_fer2013_labels_become_distillation_targets_for_the_matched_faces(tmp_path, capsys):
    from fer.data import input_pipeline
    from fer.data import soft_targets
    from research.anger import targets

    root = _data(tmp_path)
    out = str(tmp_path / "fer2013_targets.npz")
    assert targets.main(["--data_dir", str(root), "--tfds_dir", str(tmp_path / "tfds"),
                         "--out", out]) == 0
    assert "2 of 3 FER+ training faces matched; 1 of them" in capsys.readouterr().out
    config = configs.load("resnet_fer:size=tiny,data=ferplus")
    config.data_dir, config.tfds_dir = str(root / "ferplus"), str(tmp_path / "tfds")
    split = input_pipeline.load_dataset(config).split("train")
    probs = soft_targets.load(out, labels=split.labels, num_classes=8)
    anger_row = np.eye(8)[labels_lib.FERPLUS.index("anger")]
    for i in range(len(probs)):
        seed = next(s for s in (0, 1, 4)
                    if np.array_equal(split.source[i]["image"][..., 0], _face(s)))
        # Faces 0 and 1: FER2013 says angry (FER+'s raters: anger, neutral). Face 4 is
        # in FER2013 twice, so unmatched: its own votes stay.
        np.testing.assert_allclose(probs[i], anger_row if seed in (0, 1) else split.votes[i])
    assert probs[:, labels_lib.FERPLUS.index("neutral")].sum() == 1.0


def test_fer2013_targets_need_the_fer2013_file(tmp_path, capsys):
    from research.anger import targets

    root = _data(tmp_path)
    (root / "fer2013" / "fer2013.csv.gz").unlink()
    assert targets.main(["--data_dir", str(root), "--tfds_dir", str(tmp_path / "tfds"),
                         "--out", str(tmp_path / "t.npz")]) == 2
    assert "research.anger.targets: " in capsys.readouterr().err
    assert not (tmp_path / "t.npz").exists()
