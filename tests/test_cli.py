"""The `fer` console script end to end, with a real (tiny) model exported to TFLite."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

import gallery_fixtures as gf
from fer import cli
from fer import labels as labels_lib
from fer.export import runtime
from fer.gallery import analyze, detect, photos


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return gf.export_tiny_model(str(tmp_path_factory.mktemp("model")))


@pytest.fixture()
def library(tmp_path):
    root = tmp_path / "photos"
    good = gf.write_good_photos(str(root))
    gf.write_bad_files(str(root / "bad"))
    return root, good


def _run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_prints_json_from_the_exported_model(model_dir, library, capsys):
    _, good = library
    bad = os.path.join(os.path.dirname(good["blank.png"]), "bad", "corrupt.jpg")
    code, out, _ = _run(capsys, "predict", good["astronaut.jpg"], good["two_faces.jpg"],
                        good["blank.png"], bad, "--model", model_dir)
    assert code == 0
    astronaut, two, blank, broken = json.loads(out)
    canonical = labels_lib.get_label_set("ferplus").canonical
    (face,) = astronaut["faces"]
    assert astronaut["label"] == face["label"] in canonical
    assert astronaut["emoji"] == labels_lib.EMOJI[face["label"]]
    assert list(face["probs"]) == list(canonical)
    assert sum(face["probs"].values()) == pytest.approx(1, abs=1e-3)
    assert face["confidence"] == pytest.approx(max(face["probs"].values()), abs=1e-4)
    # The same crop through LiteRT directly gives the same probabilities.
    classifier = runtime.LiteRTClassifier(model_dir)
    photo = photos.read_photo(good["astronaut.jpg"])
    det = detect.BlazeFaceDetector().detect(photo.image)
    crop = analyze.crop_faces(photo.image, detect.square_crop_boxes(det), (48, 48))
    expected = classifier.predict_probs(analyze.to_model_input(crop, 1))[0]
    np.testing.assert_allclose(list(face["probs"].values()), expected, atol=1e-4)
    assert two["label"] == analyze.MULTIPLE and two["emoji"] == labels_lib.EMOJI["multiple"]
    assert len(two["faces"]) == 2
    assert blank["label"] is None and blank["faces"] == []
    assert "not an image" in broken["error"]


def test_scan_filter_gallery_with_two_workers(model_dir, library, tmp_path, capsys):
    root, good = library
    os.remove(root / "bad" / "locked.jpg")  # Readable to root; test_gallery covers it.
    db = tmp_path / "index.sqlite"
    code, out, _ = _run(capsys, "scan", root, "--db", db, "--model", model_dir,
                        "--workers", 2, "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["photos"] == summary["classified"] == len(good)
    reasons = {os.path.basename(s["path"]): s["reason"] for s in summary["skipped"]}
    assert reasons["truncated.jpg"].startswith("truncated JPEG")
    assert "too large" in reasons["huge.png"] and "empty" in reasons["empty.jpg"]
    assert reasons["loop.jpg"] == "symlink loop"
    # Rescan: nothing new.
    code, out, _ = _run(capsys, "scan", root, "--db", db, "--model", model_dir, "--quiet")
    assert code == 0 and "0 classified now" in out and "huge.png: image too large" in out
    # Filter by each label present: exactly the photos with a face showing it (the
    # default mode, any face; test_gallery_web tests the modes), and `multiple`.
    rows = sqlite3.connect(db).execute(
        "SELECT path, label FROM photos WHERE label = 'multiple' UNION "
        "SELECT path, faces.label FROM faces JOIN photos ON photos.id = photo_id").fetchall()
    by_label = {}
    for path, label in rows:
        by_label.setdefault(label, set()).add(path)
    assert by_label[analyze.MULTIPLE] == {good["two_faces.jpg"]}
    for label, paths in by_label.items():
        if label is None:
            continue
        code, out, _ = _run(capsys, "filter", "--label", label, "--db", db)
        assert code == 0 and set(out.split()) == paths, label
    # Any spelling of a label is accepted; an unknown one is a clear error.
    first = next(label for label in by_label if label not in (None, analyze.MULTIPLE))
    synonym = {"happy": "happiness", "sad": "sadness", "anger": "angry"}.get(first, first)
    assert _run(capsys, "filter", "--label", synonym.upper(), "--db", db)[1].split() == \
        sorted(by_label[first])
    code, _, err = _run(capsys, "filter", "--label", "bored", "--db", db)
    assert code == 2 and "unknown expression label" in err
    # Static gallery.
    out_dir = tmp_path / "site"
    code, _, _ = _run(capsys, "gallery", "--db", db, "--out", out_dir)
    assert code == 0 and (out_dir / "index.html").exists()
    assert len(os.listdir(out_dir / "thumbs")) == len(good)


def test_killed_scan_resumes_without_losing_indexed_photos(model_dir, tmp_path):
    TOTAL = 150  # noqa: N806
    root = tmp_path / "photos"
    root.mkdir()
    first = gf.save(str(root / "p000.jpg"), gf.landscape(gf.astronaut()), quality=90)
    for i in range(1, TOTAL):  # Enough work that the kill lands mid-scan, even on a busy CPU.
        shutil.copyfile(first, root / f"p{i:03d}.jpg")
    db = tmp_path / "index.sqlite"
    cmd = [sys.executable, "-m", "fer", "scan", str(root), "--db", str(db), "--model",
           model_dir, "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    indexed = 0
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                indexed = sqlite3.connect(db).execute(
                    "SELECT COUNT(*) FROM photos").fetchone()[0]
            except sqlite3.OperationalError:
                indexed = 0
            if indexed >= 2:
                break
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    kept = sqlite3.connect(db).execute("SELECT COUNT(*) FROM photos").fetchone()[0]
    assert TOTAL > kept >= indexed >= 2  # Killed mid-scan, after some commits.
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    result = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=120)
    summary = json.loads(result.stdout)
    assert summary["photos"] == TOTAL
    assert summary["unchanged"] == kept and summary["classified"] == TOTAL - kept


def test_fer_composites_are_found_and_classified(model_dir, tmp_path, capsys):
    if not os.environ.get("FER_DATA"):
        pytest.skip("FER_DATA not set")
    composites = gf.fer_composites(str(tmp_path / "fer"), count=10)
    code, out, _ = _run(capsys, "predict", *[p for p, _ in composites], "--model", model_dir)
    results = json.loads(out)
    found = 0
    for result, (_, (x0, y0, x1, y1)) in zip(results, composites):
        for face in result["faces"]:
            bx, by, bw, bh = face["box"]
            cx, cy = (bx + bw / 2) * 640, (by + bh / 2) * 480
            assert x0 < cx < x1 and y0 < cy < y1, (result["path"], face["box"])
        found += len(result["faces"]) == 1
    # FER crops are tight, often turned or occluded: most, not all, are found.
    assert found >= 6, results


def test_missing_model_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(analyze.MODEL_ENV, str(tmp_path / "nowhere"))
    (tmp_path / "p").mkdir()
    code, _, err = _run(capsys, "scan", tmp_path / "p", "--db", tmp_path / "i.sqlite",
                        "--model", tmp_path / "nowhere")
    assert code == 2 and "does not exist" in err
    # As on a checkout without a shipped model and without $FER_MODEL:
    real_default = analyze.default_model_dir
    monkeypatch.setattr(analyze, "default_model_dir",
                        lambda: real_default(shipped=str(tmp_path / "not_shipped")))
    monkeypatch.delenv(analyze.MODEL_ENV)
    code, _, err = _run(capsys, "predict", "x.jpg")
    assert code == 2 and "launch.py" in err and "--model" in err
    code, _, err = _run(capsys, "filter", "--label", "happy", "--db", tmp_path / "none.db")
    assert code == 2 and "fer scan" in err


def test_python_dash_m_fer_shows_the_commands():
    result = subprocess.run([sys.executable, "-m", "fer", "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0
    for command in ("scan", "filter", "predict", "gallery"):
        assert command in result.stdout
