"""Gallery: decoding, face detection, the SQLite index, incremental scans, the server."""

from __future__ import annotations

import builtins
import http.client
import io
import os

import cv2
import numpy as np
import pytest
from PIL import Image

import gallery_fixtures as gf
from fer import labels as labels_lib
from fer.gallery import analyze, detect, index, photos, scan, web


@pytest.fixture(scope="module")
def blazeface():
    return detect.BlazeFaceDetector()


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return gf.write_good_photos(str(tmp_path_factory.mktemp("good")))


def _unreadable(monkeypatch, path):
    """chmod 000 stops everyone but root; as root, make open() fail the same way."""
    if os.geteuid() != 0:
        return
    real_open = builtins.open

    def guarded(file, *args, **kwargs):
        if os.fspath(file) == path:
            raise PermissionError(13, "Permission denied", path)
        return real_open(file, *args, **kwargs)
    monkeypatch.setattr(builtins, "open", guarded)


# --- Decoding -----------------------------------------------------------------

def test_every_format_and_depth_decodes_to_the_same_upright_rgb(good):
    reference = gf.landscape(gf.astronaut()).astype(np.int16)
    for name in ("astronaut.jpg", "rotated.jpg", "astronaut.webp", "astronaut.bmp",
                 "astronaut.tiff", "astronaut_rgba.png"):
        photo = photos.read_photo(good[name])
        assert photo.image.dtype == np.uint8 and photo.image.shape == (480, 640, 3), name
        assert (photo.width, photo.height) == (640, 480), name
        diff = np.abs(photo.image.astype(np.int16) - reference)
        # Lossy codecs differ a little everywhere; a wrong rotation or channel order
        # would differ a lot. The RGBA corner is transparent: composited on white.
        region = diff[40:, 40:] if "rgba" in name else diff
        assert region.mean() < 6, (name, region.mean())
    rgba = photos.read_photo(good["astronaut_rgba.png"]).image
    assert (rgba[:40, :40] == 255).all()
    gray16 = photos.read_photo(good["astronaut_16bit.png"]).image
    expected = cv2.cvtColor(gf.landscape(gf.astronaut()), cv2.COLOR_RGB2GRAY)
    assert np.abs(gray16[..., 0].astype(int) - expected).max() <= 1
    assert (gray16[..., 0] == gray16[..., 2]).all()


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_matches_pil(tmp_path, orientation):
    upright = gf.landscape(gf.astronaut(), (120, 200))
    path = gf.save_with_orientation(str(tmp_path / "o.jpg"), upright, orientation)
    photo = photos.read_photo(path)
    assert photo.image.shape == upright.shape and (photo.width, photo.height) == (200, 120)
    assert np.abs(photo.image.astype(int) - upright).mean() < 6


def test_large_jpeg_is_decoded_reduced_not_full(tmp_path):
    big = cv2.resize(gf.landscape(gf.astronaut()), (4000, 3000))
    path = gf.save(str(tmp_path / "big.jpg"), big, quality=85)
    assert photos.reduction_for(4000, 3000) == 4
    assert photos.reduction_for(640, 480) == 1
    photo = photos.read_photo(path)
    assert (photo.width, photo.height) == (4000, 3000)
    assert photo.image.shape == (750, 1000, 3)  # libjpeg's 1/4 scale, no resize needed.


def test_bad_files_are_refused_with_reasons(tmp_path, monkeypatch):
    bad = gf.write_bad_files(str(tmp_path))
    _unreadable(monkeypatch, bad["locked.jpg"])
    expected = {"empty.jpg": "empty file", "truncated.jpg": "truncated",
                "corrupt.jpg": "not an image", "notes.png": "not an image",
                "huge.png": "too large", "loop.jpg": "symbolic links",
                "locked.jpg": "Permission denied"}
    for name, words in expected.items():
        with pytest.raises(photos.PhotoError, match=words):
            photos.read_photo(bad[name])


def test_bomb_is_refused_from_its_header_alone():
    # 20000 x 20000 JPEG header, with no pixel data at all: refused on size alone.
    buf = io.BytesIO()
    Image.new("L", (16, 16)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = (20000).to_bytes(2, "big") * 2
    with pytest.raises(photos.PhotoError, match="too large.*before decoding"):
        photos.decode_photo(bytes(data), max_pixels=100_000_000)


# --- Detection ----------------------------------------------------------------

def test_anchors_cover_the_feature_map():
    anchors = detect.ssd_anchors()
    assert anchors.shape == (2304, 2)
    np.testing.assert_allclose(anchors[0], [0.5 / 48, 0.5 / 48])
    np.testing.assert_allclose(anchors[1], [1.5 / 48, 0.5 / 48])   # x runs fastest.
    np.testing.assert_allclose(anchors[48], [0.5 / 48, 1.5 / 48])


def test_weighted_nms_merges_overlaps_and_keeps_separate_faces():
    boxes = np.array([[0.1, 0.1, 0.3, 0.3], [0.12, 0.1, 0.32, 0.3],
                      [0.6, 0.6, 0.8, 0.8]], np.float32)
    scores = np.array([0.9, 0.6, 0.7], np.float32)
    kept = detect.weighted_nms(boxes, scores)
    assert [round(s, 2) for _, s in kept] == [0.9, 0.7]
    np.testing.assert_allclose(kept[0][0], (0.9 * boxes[0] + 0.6 * boxes[1]) / 1.5,
                               rtol=1e-6)
    np.testing.assert_allclose(kept[1][0], boxes[2])


def test_blazeface_finds_the_astronaut_and_nothing_in_blank(blazeface):
    faces = blazeface.detect(gf.astronaut())
    assert len(faces) == 1
    face = faces[0]
    # Eileen Collins' face spans about x 175..275, y 65..170 of the 512x512 photo.
    assert 150 < face.x0 < 200 and 250 < face.x1 < 300, face
    assert 40 < face.y0 < 100 and 150 < face.y1 < 200, face
    assert face.score > 0.7
    assert blazeface.detect(gf.blank()) == []
    assert blazeface.detect(gf.astronaut()[300:, :200].copy()) == []  # Suit, no face.
    gray = np.repeat(gf.cameraman()[..., None], 3, 2)
    assert len(blazeface.detect(gray)) == 1
    assert len(blazeface.detect(gf.two_faces())) == 2


def test_haar_option_finds_the_astronaut():
    faces = detect.create_detector("haar").detect(gf.astronaut())
    assert any(150 < f.x0 < 200 and 40 < f.y0 < 100 for f in faces)
    with pytest.raises(ValueError, match="unknown face detector"):
        detect.create_detector("yolo")


def test_crop_faces_pads_at_the_border():
    image = np.zeros((100, 100, 3), np.uint8)
    image[:, :50] = 200
    crops = analyze.crop_faces(image, [(50, 50, 40), (0, 0, 40)], (48, 48))
    assert crops.shape == (2, 48, 48, 3)
    assert crops[0, :, :20].mean() > 190 and crops[0, :, 28:].mean() < 10
    assert crops[1].min() == 200  # Edge replicated, no black frame.


# --- Analysis, index, scan ----------------------------------------------------

def _factory(classifier=None):
    classifier = classifier or gf.FakeClassifier()
    analyzer = analyze.PhotoAnalyzer(detect.BlazeFaceDetector(), classifier,
                                     thumbnail_side=160)
    return lambda: analyzer


def test_analyzer_labels_photos_from_the_models_canonical_labels(good):
    fake = gf.FakeClassifier()
    analyzer = _factory(fake)()
    one = analyzer.analyze(good["astronaut.jpg"])
    assert len(one.faces) == 1 and one.label in fake.spec.canonical_labels
    assert set(one.faces[0].probs) == set(labels_lib.get_label_set("ferplus").canonical)
    assert one.confidence == pytest.approx(0.8)
    assert set(one.timings_ms) >= set(analyze.STEPS) | {"total"}
    x, y, w, h = one.faces[0].box
    assert 0.25 < x < 0.5 and 0.05 < y < 0.25 and 0.1 < w < 0.25  # Fractions of 640x480.
    both = analyzer.analyze(good["two_faces.jpg"])
    assert both.label == analyze.MULTIPLE and len(both.faces) == 2
    assert fake.faces_seen == 3 and fake.calls == 2  # All faces of a photo in one batch.
    none = analyzer.analyze(good["blank.png"])
    assert none.label is None and none.faces == [] and none.to_json()["label"] is None


def test_the_analyzer_crops_with_its_margin_and_lift(good):
    photo = photos.read_photo(good["astronaut.jpg"])
    found = detect.BlazeFaceDetector().detect(photo.image)
    (cx, cy, side), = detect.square_crop_boxes(found, 1.1, 0.0)
    (lx, ly, lside), = detect.square_crop_boxes(found, 1.1, 0.05)
    box = max(found[0].width, found[0].height)
    assert (lx, lside) == (cx, side) and np.isclose(cy - ly, 0.05 * box)  # Lifted, same size.
    for margin, lift in ((1.25, 0.0), (1.1, 0.05)):
        fake = gf.FakeClassifier(preprocessing="none")
        analyze.PhotoAnalyzer(detect.BlazeFaceDetector(), fake, margin=margin,
                              lift=lift).analyze_photo(photo)
        rgb = analyze.crop_faces(photo.image, detect.square_crop_boxes(found, margin, lift),
                                 (48, 48))
        np.testing.assert_array_equal(fake.last_faces[0, :, :, 0],
                                      cv2.cvtColor(rgb[0], cv2.COLOR_RGB2GRAY))


def test_gray_and_preprocessing_follow_the_model_spec(good):
    from fer.data import preprocessing

    photo = photos.read_photo(good["astronaut.jpg"])
    crops = detect.square_crop_boxes(detect.BlazeFaceDetector().detect(photo.image))
    rgb = analyze.crop_faces(photo.image, crops, (48, 48))
    for variant in ("none", "equalize"):
        fake = gf.FakeClassifier(preprocessing=variant)
        analyze.PhotoAnalyzer(detect.BlazeFaceDetector(), fake).analyze_photo(photo)
        expected = preprocessing.apply(variant, cv2.cvtColor(rgb[0], cv2.COLOR_RGB2GRAY))
        np.testing.assert_array_equal(fake.last_faces[0, :, :, 0], expected)
    colour = gf.FakeClassifier(input_shape=(64, 64, 3))
    analyze.PhotoAnalyzer(detect.BlazeFaceDetector(), colour).analyze_photo(photo)
    assert colour.last_faces.shape == (1, 64, 64, 3)
    assert colour.last_faces[0, ..., 0].mean() != colour.last_faces[0, ..., 2].mean()


def test_default_model_dir_errors_clearly(monkeypatch, tmp_path):
    monkeypatch.setenv(analyze.MODEL_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="launch.py"):
        analyze.default_model_dir(shipped=str(tmp_path / "not_shipped"))
    (tmp_path / "model.json").write_text("{}")
    assert analyze.default_model_dir() == str(tmp_path)
    monkeypatch.delenv(analyze.MODEL_ENV)
    assert analyze.default_model_dir(shipped=str(tmp_path)) == str(tmp_path)


def test_scan_indexes_good_photos_and_skips_bad_ones_with_reasons(tmp_path, monkeypatch):
    root = tmp_path / "photos"
    good_paths = gf.write_good_photos(str(root))
    bad = gf.write_bad_files(str(root / "bad"))
    _unreadable(monkeypatch, bad["locked.jpg"])
    (root / "readme.txt").write_text("ignored: not a photo name")
    (root / "._astronaut.jpg").write_bytes(b"\0\5\26\7 macOS metadata, hidden")
    os.symlink(root / "bad", root / "bad_again")  # A second way in: scanned once.
    conn = index.connect(str(tmp_path / "index.sqlite"))
    summary = scan.scan(str(root), conn, _factory(), "m1", workers=1, progress=False)
    assert summary.photos == len(good_paths) == summary.classified
    skipped = dict(summary.skipped)
    for name in ("empty.jpg", "truncated.jpg", "corrupt.jpg", "notes.png", "huge.png",
                 "loop.jpg", "locked.jpg"):
        assert name in {os.path.basename(p) for p in skipped}, name
    assert any("symlink loop" in r for p, r in skipped.items() if p.endswith("up"))
    assert "scanned once" in skipped[str(root / "bad_again")]
    assert not any("._" in p for p in skipped)
    # A gallery written inside the photo folder is not indexed on the next scan.
    web.write_static(str(tmp_path / "index.sqlite"), str(root / "site"))
    again = scan.scan(str(root), conn, _factory(), "m1", workers=1, progress=False)
    assert again.classified == 0 and again.photos == len(good_paths)
    assert summary.labels["no face"] == 1 and summary.labels[analyze.MULTIPLE] == 1
    assert summary.faces == len(good_paths) - 1 + 1  # blank has 0, two_faces has 2.
    text = summary.format()
    assert "skipped:" in text and "huge.png" in text and "truncated" in text


def test_rescan_reclassifies_only_new_and_changed_files(tmp_path):
    root = tmp_path / "photos"
    paths = gf.write_good_photos(str(root))
    conn = index.connect(str(tmp_path / "i.sqlite"))
    fake = gf.FakeClassifier()
    first = scan.scan(str(root), conn, _factory(fake), "m1", workers=1, progress=False)
    ids = {p["path"]: p["id"] for p in index.photos(conn)}
    again = scan.scan(str(root), conn, _factory(fake), "m1", workers=1, progress=False)
    assert again.classified == 0 and again.unchanged == first.found
    # Change one (content and mtime), add one, remove one.
    gf.save(paths["astronaut.jpg"], gf.blank(), quality=90)
    os.utime(paths["astronaut.jpg"], ns=(1, 1))
    gf.save(str(root / "new.png"), gf.landscape(gf.astronaut(), seed=5))
    os.remove(paths["astronaut.bmp"])
    third = scan.scan(str(root), conn, _factory(fake), "m1", workers=1, progress=False)
    assert (third.classified, third.removed) == (2, 1)
    rows = {p["path"]: p for p in index.photos(conn)}
    assert rows[paths["astronaut.jpg"]]["label"] is None  # Now blank: no face.
    assert rows[paths["astronaut.jpg"]]["id"] == ids[paths["astronaut.jpg"]]
    assert paths["astronaut.bmp"] not in rows
    # A different model reclassifies everything.
    fourth = scan.scan(str(root), conn, _factory(fake), "m2", workers=1, progress=False)
    assert fourth.classified == third.photos


def test_interrupted_scan_keeps_what_it_indexed_and_resumes(tmp_path):
    root = tmp_path / "photos"
    gf.write_good_photos(str(root))
    db = str(tmp_path / "i.sqlite")
    done = []

    def crash_after_three(path):
        done.append(path)
        if len(done) == 3:
            raise KeyboardInterrupt("killed mid-scan")

    conn = index.connect(db)
    with pytest.raises(KeyboardInterrupt):
        scan.scan(str(root), conn, _factory(), "m", workers=1, progress=False,
                  on_photo=crash_after_three)
    conn.close()
    conn = index.connect(db)  # As a new process would.
    assert {p["path"] for p in index.photos(conn)} == set(done)
    resumed = scan.scan(str(root), conn, _factory(), "m", workers=1, progress=False)
    assert resumed.unchanged == 3 and resumed.classified == resumed.found - 3


# --- Server -------------------------------------------------------------------

@pytest.fixture()
def served_index(tmp_path):
    root = tmp_path / "photos"
    gf.write_good_photos(str(root))
    (tmp_path / "secret.txt").write_text("not to be served")
    db = str(tmp_path / "i.sqlite")
    conn = index.connect(db)
    scan.scan(str(root), conn, _factory(), "m", workers=1, progress=False)
    ids = [p["id"] for p in index.photos(conn)]
    conn.close()
    server = web.make_server(db, "127.0.0.1", 0)
    import threading
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], ids
    server.shutdown()
    server.server_close()


def _get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read()


def test_server_serves_indexed_photos_only(served_index):
    port, ids = served_index
    status, body = _get(port, "/")
    assert status == 200 and b"fer gallery" in body
    status, body = _get(port, f"/thumbs/{ids[0]}.jpg")
    assert status == 200 and body[:2] == b"\xff\xd8"
    status, body = _get(port, f"/photos/{ids[0]}")
    assert status == 200 and len(body) > 1000
    for path in ("/../secret.txt", "/thumbs/../../secret.txt", "/photos/..%2fsecret.txt",
                 "/%2e%2e/%2e%2e/etc/passwd", f"/photos/{max(ids) + 1}",
                 f"/thumbs/{max(ids) + 1}.jpg", "/photos/-1", "/etc/passwd",
                 "/photos/" + os.path.join("..", "secret.txt")):
        status, body = _get(port, path)
        assert status == 404, path
        assert b"not to be served" not in body and b"root:" not in body


def test_server_binds_loopback_by_default():
    import inspect
    assert inspect.signature(web.make_server).parameters["host"].default == "127.0.0.1"
    from fer import cli
    args = cli.build_parser().parse_args(["gallery", "--serve"])
    assert args.host == "127.0.0.1"


def test_gallery_data_lists_labels_in_canonical_order_with_emoji(tmp_path):
    root = tmp_path / "p"
    gf.write_good_photos(str(root))
    conn = index.connect(str(tmp_path / "i.sqlite"))
    scan.scan(str(root), conn, _factory(), "m", workers=1, progress=False)
    data = web.gallery_data(conn, serve=True)
    assert data["labels"][-1] == analyze.MULTIPLE
    order = [labels_lib.CANONICAL.index(x) for x in data["labels"][:-1]]
    assert order == sorted(order)
    assert all(data["emoji"][x] == labels_lib.EMOJI[x] for x in data["labels"])
    assert {p["label"] for p in data["photos"]} >= {web.NO_FACE, analyze.MULTIPLE}


def test_pipeline_benchmark_reports_every_step(tmp_path):
    from benchmarks import pipeline

    (tmp_path / "small").mkdir()
    for i in range(2):
        gf.save(str(tmp_path / "small" / f"{i}.jpg"), gf.landscape(gf.astronaut(), seed=i),
                quality=90)
    groups = pipeline.groups_of(str(tmp_path))
    assert list(groups) == ["small"] and len(groups["small"]) == 2
    stats = pipeline.per_step(_factory()(), groups["small"])
    assert stats["photos"] == 2 and stats["faces"] == 2
    assert set(stats["steps"]) == set(analyze.STEPS) | {"total", "total_cpu"}
    total = stats["steps"]["total"]["mean_ms"]
    assert total >= sum(stats["steps"][s]["mean_ms"] for s in analyze.STEPS) - 0.01
    record = {"detector": "blazeface", "model_design": "fake", "cpu": "x", "load_average": 0,
              "groups": {"small": {"per_step": stats, "throughput": [
                  {"workers": 1, "photos_per_s": 10.0}]}}}
    table = [line for line in pipeline.markdown(record).splitlines() if line.startswith("|")]
    assert table[2].startswith("| small | 2 | 2 |")
    # Header, delimiter and rows have the same number of columns, or no viewer renders it.
    assert len({line.count("|") for line in table}) == 1


def test_undecodable_file_names_are_skipped_not_fatal(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    gf.save(str(root / "ok.jpg"), gf.landscape(gf.astronaut()), quality=90)
    bad_name = os.path.join(os.fsencode(root), b"caf\xe9.jpg")  # Latin-1, not UTF-8.
    with open(bad_name, "wb") as f:
        f.write(open(root / "ok.jpg", "rb").read())
    conn = index.connect(str(tmp_path / "i.sqlite"))
    summary = scan.scan(str(root), conn, _factory(), "m", workers=1, progress=False)
    assert summary.photos == 1
    assert [r for _, r in summary.skipped] == ["file name is not valid UTF-8"]


class _CrashingAnalyzer:
    """Kills its own process on files named crash*, like a segfaulting decoder."""

    def __init__(self):
        self.inner = _factory()()

    def analyze(self, path):
        if os.path.basename(path).startswith("crash"):
            os._exit(139)
        return self.inner.analyze(path)


def crashing_factory():  # Module level: worker processes import it by name.
    return _CrashingAnalyzer()


def test_a_file_that_kills_its_worker_is_skipped_and_the_scan_goes_on(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    for name in ("a.jpg", "crash.jpg", "b.jpg", "c.jpg"):
        gf.save(str(root / name), gf.landscape(gf.astronaut()), quality=90)
    conn = index.connect(str(tmp_path / "i.sqlite"))
    summary = scan.scan(str(root), conn, crashing_factory, "m", workers=2, progress=False)
    assert summary.photos == 3 and summary.classified == 3
    assert summary.skipped == [(str(root / "crash.jpg"), scan.CRASHED)]


def test_a_new_detector_version_or_crop_redoes_the_index(monkeypatch):
    from fer import spec

    model_dir = spec.SHIPPED_MODEL_DIR
    before = scan.model_fingerprint(model_dir, "blazeface")
    assert before == scan.model_fingerprint(model_dir, "blazeface")
    assert before != scan.model_fingerprint(model_dir, "haar")
    monkeypatch.setitem(detect.DETECTOR_VERSIONS, "blazeface",
                        detect.DETECTOR_VERSIONS["blazeface"] + 1)
    bumped = scan.model_fingerprint(model_dir, "blazeface")
    assert bumped != before
    monkeypatch.setattr(detect, "CROP_LIFT", detect.CROP_LIFT + 0.01)
    assert scan.model_fingerprint(model_dir, "blazeface") != bumped
