"""research.anger: FER2013's faces found in FER+ by their pixels, then cross-tabulated."""

import gzip
import cv2
import numpy as np

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
