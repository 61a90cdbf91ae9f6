"""BlazeFace on tiles: small faces in big photos, and no tiles for small photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import gallery_fixtures as gf
from benchmarks import pipeline
from fer.gallery import detect, photos


@pytest.fixture(scope="module")
def blazeface():
    return detect.BlazeFaceDetector()


def _count_runs(detector: detect.BlazeFaceDetector, monkeypatch) -> list[tuple]:
    """Records the shape of every image BlazeFace is run on."""
    shapes = []
    run = detector._anchor_boxes

    def counting(image, min_score):
        shapes.append(image.shape)
        return run(image, min_score)

    monkeypatch.setattr(detector, "_anchor_boxes", counting)
    return shapes


def _photo_with_astronaut(face_fraction: float, centre: tuple[float, float],
                          reference: detect.Detection) -> tuple[photos.Photo, np.ndarray]:
    """A 4000x3000 JPEG, read as a scan reads it, with the astronaut scaled so her
    face box is `face_fraction` of the width and centred at `centre` (fractions);
    returns the photo and her face box in its working pixels."""
    w, h = 4000, 3000
    bg = pipeline.background(np.random.default_rng(0), w, h)
    scale = face_fraction * w / reference.width
    side = round(512 * scale)
    person = cv2.resize(gf.astronaut(), (side, side), interpolation=cv2.INTER_CUBIC)
    face_cx, face_cy = ((reference.x0 + reference.x1) / 2 * scale,
                        (reference.y0 + reference.y1) / 2 * scale)
    x, y = round(centre[0] * w - face_cx), round(centre[1] * h - face_cy)
    fits = person[:h - y, :w - x]  # Her suit may run off the photo's edge.
    bg[y:y + fits.shape[0], x:x + fits.shape[1]] = fits
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(bg, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    photo = photos.decode_photo(jpeg.tobytes())
    truth = (np.float32([reference.x0, reference.y0, reference.x1, reference.y1]) * scale
             + np.float32([x, y, x, y])) * photo.scale
    return photo, truth


@pytest.mark.parametrize("fraction, centre", [
    (0.04, (0.30, 0.45)),   # In the overlap of two tiles across and two down.
    (0.05, (0.85, 0.85)),   # Inside the bottom-right tile only.
])
def test_small_face_in_a_big_photo_is_found_in_place(blazeface, fraction, centre):
    reference = blazeface.detect(gf.astronaut())[0]
    photo, truth = _photo_with_astronaut(fraction, centre, reference)
    assert max(photo.image.shape) > detect.TILE_ABOVE  # The scan's size: tiled.
    found = blazeface.detect(photo.image)
    boxes = detect.as_boxes(found)
    overlaps = detect.iou(truth, boxes)
    assert len(found) == 1 and overlaps[0] >= 0.5, (found, truth)  # Once, in place.
    whole_only = detect.BlazeFaceDetector(tile_above=None).detect(photo.image)
    boxes = detect.as_boxes(whole_only)
    assert not (detect.iou(truth, boxes) >= 0.5).any(), "too easy: found without tiles"


def test_a_large_face_is_not_doubled_by_tiles(blazeface):
    reference = blazeface.detect(gf.astronaut())[0]
    photo, truth = _photo_with_astronaut(0.12, (0.5, 0.4), reference)  # Many tiles.
    found = blazeface.detect(photo.image)
    boxes = detect.as_boxes(found)
    overlaps = detect.iou(truth, boxes)
    # Found by the whole frame and by several tiles, merged into one box.
    assert (overlaps > 0).sum() == 1 and overlaps.max() >= 0.5, (found, truth)


@pytest.mark.parametrize("height, width", [(750, 1000), (1000, 1500), (1920, 1080),
                                           (801, 600), (400, 1920)])
def test_tile_layout_covers_the_image_with_overlap(height, width):
    tiles = detect.tile_layout(height, width)
    side = tiles[0][2]
    assert side == min(round(detect.TILE_FRACTION * max(height, width)), height, width)
    covered = np.zeros((height, width), bool)
    for x, y, s in tiles:
        assert s == side and 0 <= x <= width - s and 0 <= y <= height - s
        covered[y:y + s, x:x + s] = True
    assert covered.all()
    min_overlap = round(detect.TILE_OVERLAP * side)
    for axis, length in ((0, width), (1, height)):
        starts = sorted({t[axis] for t in tiles})
        assert starts[0] == 0 and starts[-1] + side == length
        assert all(b - a <= side - min_overlap for a, b in zip(starts, starts[1:]))


def test_tile_starts_single_tile_and_even_spread():
    assert detect.tile_starts(100, 100, 10) == [0]
    assert detect.tile_starts(80, 100, 10) == [0]
    assert detect.tile_starts(1000, 450, 112) == [0, 275, 550]


def test_small_photo_runs_blazeface_once(blazeface, monkeypatch):
    runs = _count_runs(blazeface, monkeypatch)
    faces = blazeface.detect(gf.landscape(gf.astronaut()))  # 640x480.
    assert len(faces) == 1
    assert runs == [(480, 640, 3)]


def test_large_photo_runs_the_whole_frame_and_each_tile(blazeface, monkeypatch):
    runs = _count_runs(blazeface, monkeypatch)
    image = gf.landscape(gf.astronaut(), size=(750, 1000))
    blazeface.detect(image)
    tiles = detect.tile_layout(750, 1000)
    assert runs == [(750, 1000, 3)] + [(s, s, 3) for _, _, s in tiles]
    assert len(tiles) == 6


def test_tiles_can_be_turned_off(monkeypatch):
    detector = detect.BlazeFaceDetector(tile_above=None)
    runs = _count_runs(detector, monkeypatch)
    detector.detect(gf.landscape(gf.astronaut(), size=(1500, 2000)))
    assert len(runs) == 1
