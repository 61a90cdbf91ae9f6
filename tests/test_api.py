"""fer.analyze / fer.FER / fer.analyze_folder and `fer predict` on folders and --csv,
with the shipped model and BlazeFace."""

from __future__ import annotations

import csv
import io
import json
import os

import cv2
import numpy as np
import pytest
from PIL import Image

import fer
import gallery_fixtures as gf
from fer import api, cli


@pytest.fixture(scope="module")
def model() -> fer.FER:
    return fer.FER()


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return gf.landscape(gf.astronaut())  # 640x480, one face.


def test_path_array_and_pil_image_give_the_same_faces(model, photo, tmp_path):
    path = gf.save(str(tmp_path / "astronaut.png"), photo)  # Lossless: same pixels.
    faces = model.analyze(path)
    assert len(faces) == 1
    assert model.analyze(photo) == faces
    assert model.analyze(tmp_path / "astronaut.png") == faces  # os.PathLike.
    with Image.open(path) as im:
        assert model.analyze(im) == faces
    opaque = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    assert model.analyze(opaque) == faces  # RGBA.
    assert fer.analyze(photo) == faces  # The default instance: same model.
    (face,) = faces
    assert face.label in model.labels == tuple(face.probabilities)
    assert face.confidence == max(face.probabilities.values())
    assert sum(face.probabilities.values()) == pytest.approx(1, abs=1e-3)
    assert json.loads(json.dumps(face.to_json()))["box"] == list(face.box)


def test_gray_array_matches_its_file(model, tmp_path):
    gray = gf.cameraman()
    faces = model.analyze(gray)
    assert faces and model.analyze(gf.save(str(tmp_path / "gray.png"), gray)) == faces


def test_boxes_are_pixels_of_the_input_image(model, photo):
    (face,) = model.analyze(photo)
    h, w = photo.shape[:2]
    x, y, bw, bh = face.box
    assert all(isinstance(v, int) for v in face.box)
    assert 0 <= x < x + bw <= w and 0 <= y < y + bh <= h
    fx, fy, fw, fh = face.box_fraction
    assert (x, y, bw, bh) == pytest.approx((fx * w, fy * h, fw * w, fh * h), abs=1)
    # The face is in the left part of the landscape, where the fixture put it.
    assert x + bw / 2 < w / 2
    # A 4x larger copy is reduced for the pipeline, but its boxes are in its own pixels.
    big = cv2.resize(photo, (w * 4, h * 4), interpolation=cv2.INTER_LINEAR)
    (big_face,) = model.analyze(big)
    bx, by, bbw, bbh = big_face.box
    assert 0 <= bx < bx + bbw <= 4 * w and 0 <= by < by + bbh <= 4 * h
    # Within a few percent (the reduced copy is not the same pixels); 2x off otherwise.
    assert np.array(big_face.box) == pytest.approx(4 * np.array(face.box), rel=0.06)


def test_pil_images_are_turned_upright_like_files(model, photo, tmp_path):
    path = gf.save_with_orientation(str(tmp_path / "rotated.jpg"), photo, 6)
    faces = model.analyze(path)
    with Image.open(path) as im:
        assert model.analyze(im) == faces
    assert faces and faces[0].box[0] + faces[0].box[2] <= 640  # Upright: 640 wide.


def test_blank_photo_has_no_faces(model):
    assert model.analyze(gf.blank()) == []


@pytest.mark.parametrize("image, error", [
    (np.zeros((48, 48, 3), np.float32), ValueError),
    (np.zeros((48, 48, 2), np.uint8), ValueError),
    (np.zeros((0, 48, 3), np.uint8), ValueError),
    ([[0, 1], [2, 3]], TypeError),
    (Image.new("I;16", (48, 48)), ValueError),
])
def test_bad_inputs_are_refused_with_a_reason(model, image, error):
    with pytest.raises(error):
        model.analyze(image)


def test_bad_paths_raise(model, tmp_path):
    with pytest.raises(IsADirectoryError, match="analyze_folder"):
        model.analyze(tmp_path)
    (tmp_path / "notes.jpg").write_text("not an image")
    with pytest.raises(fer.PhotoError, match="not an image"):
        model.analyze(tmp_path / "notes.jpg")
    with pytest.raises(NotADirectoryError):
        model.analyze_folder(tmp_path / "notes.jpg")


def test_folder_reports_bad_files_and_goes_on(model, photo, tmp_path):
    gf.save(str(tmp_path / "a.jpg"), photo, quality=92)
    (tmp_path / "b.jpg").write_bytes(b"")
    (tmp_path / "c.png").write_text("not an image")
    (tmp_path / "readme.txt").write_text("not a photo name: ignored")
    os.mkdir(tmp_path / "sub")
    gf.save(str(tmp_path / "sub" / "d.png"), gf.blank())
    gf.save(str(tmp_path / "sub" / "e.png"), gf.two_faces())
    results = {os.path.relpath(r.path, tmp_path): r for r in model.analyze_folder(tmp_path)}
    assert list(results) == ["a.jpg", "b.jpg", "c.png", "sub/d.png", "sub/e.png"]
    assert results["a.jpg"].error is None and len(results["a.jpg"].faces) == 1
    assert results["b.jpg"].faces is None and "empty" in results["b.jpg"].error
    assert results["c.png"].faces is None and "not an image" in results["c.png"].error
    assert results["sub/d.png"] == (str(tmp_path / "sub" / "d.png"), [], None)
    assert len(results["sub/e.png"].faces) == 2
    assert [r.path for r in fer.analyze_folder(str(tmp_path))] == [
        r.path for r in results.values()]


def _predict(capsys, *argv) -> tuple[int, str]:
    code = cli.main(["predict", *map(str, argv)])
    return code, capsys.readouterr().out


@pytest.fixture()
def folder(photo, tmp_path):
    root = tmp_path / "photos"
    os.makedirs(root / "sub")
    paths = {"face": gf.save(str(root / "face.jpg"), photo, quality=92),
             "two": gf.save(str(root / "sub" / "two.jpg"), gf.two_faces(), quality=90),
             "blank": gf.save(str(root / "sub" / "blank.png"), gf.blank())}
    (root / "sub" / "broken.jpg").write_text("not an image")
    paths["broken"] = str(root / "sub" / "broken.jpg")
    return root, paths


def test_predict_walks_folders(folder, photo, tmp_path, capsys):
    root, paths = folder
    extra = gf.save(str(tmp_path / "extra.png"), photo)
    code, out = _predict(capsys, extra, root)
    assert code == 0
    results = json.loads(out)
    assert [r["path"] for r in results] == [extra, paths["face"], paths["blank"],
                                            paths["broken"], paths["two"]]
    extra_r, face, blank, broken, two = results
    assert len(face["faces"]) == len(extra_r["faces"]) == 1
    assert blank["faces"] == [] and len(two["faces"]) == 2
    assert "not an image" in broken["error"]
    code, out = _predict(capsys, paths["broken"])
    assert code == 1 and "error" in json.loads(out)[0]
    os.mkdir(tmp_path / "empty")
    assert _predict(capsys, tmp_path / "empty") == (1, "[]\n")


def test_predict_csv_has_a_row_per_face(folder, model, capsys):
    root, paths = folder
    code, out = _predict(capsys, "--csv", root)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == [*api.CSV_COLUMNS, *model.labels, "error"]
    by_path: dict[str, list[dict]] = {}
    for row in rows:
        by_path.setdefault(row["path"], []).append(row)
    assert [r["face"] for r in by_path[paths["two"]]] == ["0", "1"]
    (blank,) = by_path[paths["blank"]]
    assert blank["label"] == blank["face"] == blank["error"] == ""
    (broken,) = by_path[paths["broken"]]
    assert "not an image" in broken["error"] and broken["label"] == ""
    (face,) = by_path[paths["face"]]
    expected = model.analyze(paths["face"])[0]
    assert [int(face[k]) for k in "xywh"] == list(expected.box)
    assert face["label"] == expected.label and face["error"] == ""
    probs = {k: float(face[k]) for k in model.labels}
    assert probs == pytest.approx(expected.probabilities, abs=1e-4)
    assert float(face["confidence"]) == pytest.approx(expected.confidence, abs=1e-4)
