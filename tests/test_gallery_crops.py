"""benchmarks.gallery_crops: faces pasted into photos, through the gallery's path."""

from __future__ import annotations

import cv2
import numpy as np

import gallery_fixtures as gf
from benchmarks import gallery_crops
from fer.gallery import analyze, detect


def _face48() -> np.ndarray:
    """The astronaut's face, cut like a FER crop: gray 48x48x1."""
    gray = cv2.cvtColor(gf.astronaut(), cv2.COLOR_RGB2GRAY)[40:200, 150:310]
    return cv2.resize(gray, (48, 48), interpolation=cv2.INTER_AREA)[..., None]


def test_compose_places_the_face_where_it_says():
    face = _face48()
    for context in (0.0, 0.25):
        photo, (x0, y0, x1, y1) = gallery_crops.compose(face, np.random.default_rng(3),
                                                        context=context)
        assert photo.shape == (480, 640, 3) and (x1 - x0, y1 - y0) == (160, 160)
        big = cv2.resize(face[..., 0], (160, 160), interpolation=cv2.INTER_CUBIC)
        np.testing.assert_array_equal(photo[y0:y1, x0:x1, 0], big)
    again, _ = gallery_crops.compose(face, np.random.default_rng(3), context=0.25)
    np.testing.assert_array_equal(photo, again)  # Seeded: the same photo.


def test_match_takes_the_face_centred_in_the_region():
    def face(box):
        return analyze.Face(box=box, detector_score=0.9, label="happy", confidence=0.8,
                            probs={})
    inside = face((100 / 640, 100 / 480, 150 / 640, 150 / 480))
    outside = face((400 / 640, 300 / 480, 100 / 640, 100 / 480))
    assert gallery_crops._match([outside, inside], (90, 90, 250, 250), 640, 480) is inside
    assert gallery_crops._match([outside], (90, 90, 250, 250), 640, 480) is None


def test_measure_compares_gallery_and_direct_on_the_same_faces():
    faces = np.stack([_face48()] * 3)
    labels = np.array([0, 1, 2])
    fake = gf.FakeClassifier()

    class Counting(detect.BlazeFaceDetector):
        calls = 0

        def detect(self, image):
            Counting.calls += 1
            return super().detect(image)

    record = gallery_crops.measure(faces, labels, fake, Counting(),
                                   crops=((1.0, 0.0), (1.25, 0.0),
                                          (detect.CROP_MARGIN, detect.CROP_LIFT)))
    assert Counting.calls == 3  # Once per photo: the margins crop the same boxes.
    assert record["exact_crop"]["accuracy"] is not None
    assert record["faces"] == 3 and [r["margin"] for r in record["margins"]][:2] == [1.0, 1.25]
    row = record["margins"][1]
    assert row["detected"] == 3  # A clear frontal face on plain noise is found.
    # The crop frames about the pasted face: margin x box side / 160 px.
    assert 0.7 < row["crop_to_face"]["median"] < 1.6
    assert row["crop_to_face"]["median"] > record["margins"][0]["crop_to_face"]["median"]
    # Same faces scored both ways: the gap is the accuracy difference in points.
    assert row["gap_points"] == 100 * (row["direct_same_faces"]["accuracy"]
                                       - row["gallery"]["accuracy"])
    text = gallery_crops.markdown([record])
    shipped = f"| {detect.CROP_MARGIN:g}, lift {detect.CROP_LIFT:g} (shipped) | 3 (100.0%) |"
    assert shipped in text and "| 1.25 | 3 (100.0%) |" in text and "exact square" in text


class _BoxBelow:
    """A stand-in detector: a box 0.8 x the pasted face's side, its centre 0.1 x its
    own side below the face's centre (BlazeFace's brow-to-chin box, idealised)."""

    def __init__(self):
        self.region = None

    def detect(self, image):
        x0, y0, x1, y1 = self.region
        side = 0.8 * (x1 - x0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + 0.1 * side
        return [detect.Detection(cx - side / 2, cy - side / 2, cx + side / 2,
                                 cy + side / 2, 0.9)]


def test_fit_geometry_recovers_the_crop_that_frames_the_face(monkeypatch):
    detector = _BoxBelow()
    compose = gallery_crops.compose

    def remembering(face, rng, **kwargs):
        photo, region = compose(face, rng, **kwargs)
        detector.region = region
        return photo, region

    monkeypatch.setattr(gallery_crops, "compose", remembering)
    geometry = gallery_crops.fit_geometry(np.stack([_face48()] * 4), detector, n=3)
    assert geometry["faces"] == 6 and geometry["detected"] == 6  # 3 faces x 2 contexts.
    assert (geometry["margin"], geometry["lift"]) == (1.25, 0.1)
    # The fitted crop, cut around the stand-in's box, is the pasted face's own square.
    photo, region = remembering(_face48(), np.random.default_rng(0))
    (cx, cy, side), = detect.square_crop_boxes(detector.detect(photo), geometry["margin"],
                                               geometry["lift"])
    x0, y0, x1, y1 = region
    assert np.allclose((cx, cy, side), ((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0))
