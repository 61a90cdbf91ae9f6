"""Scans that stay within bounds: decoded-memory budget, workers that die with their
parent, folders that cannot be listed, HEIC photos."""

from __future__ import annotations

import os
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

import gallery_fixtures as gf
from fer import spec as spec_lib
from fer.gallery import index, photos, scan

# 12000x9000 16-bit RGBA, half transparent: 108 MP (under MAX_PIXELS), 824 MiB decoded.
BIG_W, BIG_H = 12000, 9000
BIG_PIXEL = bytes([0x80, 0, 0x40, 0, 0xC0, 0, 0x80, 0])


@pytest.fixture(scope="module")
def big_png(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("big") / "big16.png")
    return gf.constant_png(path, BIG_W, BIG_H, BIG_PIXEL, bit_depth=16, color_type=6)


def _fer(*argv: str) -> list[str]:
    return [sys.executable, "-m", "fer", *argv]


def _children(pid: int) -> set[int]:
    """Live processes whose parent is `pid` (from /proc)."""
    out = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _stat(int(name))
            if stat is not None and int(stat[1]) == pid and stat[0] != "Z":
                out.add(int(name))
    return out


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat fields after the command name: state, ppid, ...; None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _hwm_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _watch_tree_peak(proc: subprocess.Popen, timeout: float) -> dict[tuple[int, str], int]:
    """Peak RSS (VmHWM) of `proc` and every descendant, polled until it exits.

    Keys are (pid, start time), so a reused pid is not mistaken for another process.
    The sum of the values bounds the tree's peak from above.
    """
    peaks: dict[tuple[int, str], int] = {}
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        tree, frontier = {proc.pid}, [proc.pid]
        while frontier:
            kids = _children(frontier.pop())
            frontier += kids - tree
            tree |= kids
        for pid in tree:
            stat, hwm = _stat(pid), _hwm_bytes(pid)
            if stat is not None and hwm is not None:
                key = (pid, stat[19])
                peaks[key] = max(peaks.get(key, 0), hwm)
        time.sleep(0.02)
    if proc.poll() is None:
        proc.kill()
        pytest.fail(f"scan did not finish in {timeout} s")
    return peaks


# --- 1. Memory budget -------------------------------------------------------------

def test_scan_of_huge_16bit_rgba_pngs_stays_under_1_gb(big_png, tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    for name in ("a.png", "b.png"):
        os.link(big_png, root / name)
    proc = subprocess.Popen(
        _fer("scan", str(root), "--db", str(tmp_path / "i.sqlite"), "--workers", "2",
             "--quiet", "--json", "--model", spec_lib.SHIPPED_MODEL_DIR),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks = _watch_tree_peak(proc, timeout=300)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert len(peaks) >= 3, peaks  # The parent and both workers were measured.
    total = sum(peaks.values())
    print(f"scan tree peak RSS <= {total / 2**20:.0f} MiB over {len(peaks)} processes")
    assert total < 1 << 30, {k: v >> 20 for k, v in peaks.items()}


def test_huge_16bit_rgba_png_is_refused_from_its_header_naming_size_and_budget(
        big_png, monkeypatch):
    from PIL import ImageFile

    def no_pixels(self):
        raise AssertionError("pixels decoded")

    with monkeypatch.context() as m:  # The header read alone decides.
        m.setattr(ImageFile.ImageFile, "load", no_pixels)
        with pytest.raises(photos.PhotoError, match=r"needs 412 MiB to decode "
                           r"\(12000x9000, 4 channels x 16 bit\) > the 384 MiB budget"):
            photos.read_photo(big_png, max_bytes=384 << 20)


def test_big_photos_within_budget_decode_reduced_and_composited(tmp_path):
    # 3000x2000 16-bit RGBA, half transparent: 8-bit, on white, reduced to 960 px.
    path = gf.constant_png(str(tmp_path / "a.png"), 3000, 2000, BIG_PIXEL, bit_depth=16,
                           color_type=6)
    photo = photos.read_photo(path)
    assert (photo.width, photo.height, photo.image.shape) == (3000, 2000, (640, 960, 3))
    # Alpha 0x80 (128/255) over white: round((c * 128 + 255 * 127) / 255).
    expected = [round((c * 128 + 255 * 127) / 255) for c in (0x80, 0x40, 0xC0)]
    assert (photo.image == expected).all()


def test_banded_reduction_matches_one_resize_of_the_whole_image(tmp_path):
    rng = np.random.default_rng(0)
    rgb = cv2.resize(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), (4000, 3000),
                     interpolation=cv2.INTER_CUBIC)
    path = gf.save(str(tmp_path / "big.png"), rgb)
    photo = photos.read_photo(path, work_side=photos.WORK_SIDE)
    whole = cv2.resize(rgb, (960, 720), interpolation=cv2.INTER_AREA)
    assert photo.image.shape == whole.shape
    diff = np.abs(photo.image.astype(int) - whole)
    assert diff.mean() < 0.5 and diff.max() <= 3


def test_integer_alpha_composite_equals_the_rounded_float_one():
    rgb, alpha = np.meshgrid(np.arange(256), np.arange(256))
    rgb = np.repeat(rgb.astype(np.uint8)[..., None], 3, axis=2)
    alpha = alpha.astype(np.uint8)[..., None]
    exact = np.floor((rgb * alpha.astype(np.float64) + 255.0 * (255 - alpha)) / 255 + 0.5)
    assert (photos._over_white(rgb, alpha) == exact).all()


def test_png_orientation_is_read_without_decoding_pixels(tmp_path, monkeypatch):
    from PIL import ImageFile

    upright = gf.landscape(gf.astronaut(), (60, 80))
    stored = np.ascontiguousarray(np.rot90(upright))  # Orientation 6 turns it back.
    png = cv2.imencode(".png", cv2.cvtColor(stored, cv2.COLOR_RGB2BGR))[1].tobytes()
    exif = Image.Exif()
    exif[photos.EXIF_ORIENTATION] = 6
    payload = exif.tobytes()[6:]  # Without the "Exif\0\0" of JPEG's APP1.
    chunk = (struct.pack(">I", len(payload)) + b"eXIf" + payload
             + struct.pack(">I", zlib.crc32(b"eXIf" + payload)))
    data = png[:-12] + chunk + png[-12:]  # After the pixels, before IEND.
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded"))
    assert photos._read_header(data).orientation == 6
    monkeypatch.undo()
    photo = photos.decode_photo(data)
    assert (photo.width, photo.height) == (80, 60) and (photo.image == upright).all()


# --- 2. Workers end with their parent ----------------------------------------------

def _alive(pid: int, start: str) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[19] == start and stat[0] != "Z"


def test_sigkilled_scan_leaves_no_worker_or_resource_tracker(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    first = gf.save(str(root / "p000.jpg"), gf.landscape(gf.astronaut()), quality=90)
    for i in range(1, 400):  # Enough work to be mid-scan at the kill, on a busy CPU too.
        os.link(first, root / f"p{i:03d}.jpg")
    db = tmp_path / "i.sqlite"
    proc = subprocess.Popen(
        _fer("scan", str(root), "--db", str(db), "--workers", "2", "--quiet",
             "--model", spec_lib.SHIPPED_MODEL_DIR),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        indexed, deadline = 0, time.time() + 120
        while indexed < 2 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
            try:
                indexed = sqlite3.connect(db).execute(
                    "SELECT COUNT(*) FROM photos").fetchone()[0]
            except sqlite3.OperationalError:  # Not created yet.
                pass
        children = {pid: _stat(pid)[19] for pid in _children(proc.pid)}
        assert proc.poll() is None and indexed >= 2, "the scan must be killed mid-way"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert len(children) >= 2, children  # Both workers (and the resource tracker).
    deadline = time.time() + 10
    while any(_alive(p, s) for p, s in children.items()) and time.time() < deadline:
        time.sleep(0.1)
    left = {p: open(f"/proc/{p}/cmdline").read().replace("\0", " ")
            for p, s in children.items() if _alive(p, s)}
    assert not left, left


def test_worker_exits_when_its_parent_is_already_gone():
    code = ("import os; from fer.gallery import scan; "
            "scan._die_with_parent(os.getppid() + 1); print('survived')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1 and "survived" not in result.stdout


def test_watchdog_thread_ends_an_orphaned_worker():  # The non-Linux way.
    code = ("import os, time; from fer.gallery import scan; "
            "scan._watch_parent(os.getppid() + 1, interval=0.01); time.sleep(30); "
            "print('survived')")
    start = time.time()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1 and "survived" not in result.stdout
    assert time.time() - start < 25


# --- 3. A folder that cannot be listed is not deleted ----------------------------

def test_unlistable_folder_keeps_its_photos_and_is_reported(tmp_path, monkeypatch):
    root = tmp_path / "p"
    (root / "locked").mkdir(parents=True)
    face = gf.landscape(gf.astronaut())
    gf.save(str(root / "a.jpg"), face, quality=90)
    gf.save(str(root / "locked" / "b.jpg"), face, quality=90)
    (root / "locked" / "empty.jpg").touch()  # A skip under it is kept too.
    conn = index.connect(str(tmp_path / "i.sqlite"))
    factory = _fake_factory()
    first = scan.scan(str(root), conn, factory, "m", workers=1, progress=False)
    assert first.photos == 2 and len(first.skipped) == 1 and first.unlisted == []

    real_scandir = os.scandir

    def scandir(path="."):  # As chmod 000 would, for anyone but root.
        if os.fspath(path) == str(root / "locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    (root / "a.jpg").unlink()  # Really deleted: dropped.
    again = scan.scan(str(root), conn, factory, "m", workers=1, progress=False)
    assert again.removed == 1 and again.photos == 1 and again.skipped == first.skipped
    assert again.unlisted == [(str(root / "locked"),
                               "cannot list folder: Permission denied")]
    assert "folders not listed" in again.format() and "locked" in again.format()
    assert again.to_json()["unlisted"][0]["path"] == str(root / "locked")
    assert [p["path"] for p in index.photos(conn)] == [str(root / "locked" / "b.jpg")]

    monkeypatch.undo()  # Readable again: nothing was lost, nothing is reclassified.
    third = scan.scan(str(root), conn, factory, "m", workers=1, progress=False)
    assert third.unlisted == [] and third.photos == 1 and third.classified == 0


def _fake_factory():
    from fer.gallery import analyze, detect

    analyzer = analyze.PhotoAnalyzer(detect.BlazeFaceDetector(), gf.FakeClassifier(),
                                     thumbnail_side=160)
    return lambda: analyzer


# --- 4. HEIC / HEIF -------------------------------------------------------------

def test_heic_photos_are_read_upright_and_scanned(tmp_path):
    pytest.importorskip("pillow_heif")
    root = tmp_path / "p"
    root.mkdir()
    face = gf.landscape(gf.astronaut())
    exif = Image.Exif()
    exif[photos.EXIF_ORIENTATION] = 6  # Stored turned; libheif turns it back.
    turned = Image.fromarray(np.ascontiguousarray(np.rot90(face)))
    turned.save(root / "IMG_0001.HEIC", quality=90, exif=exif.tobytes())
    photo = photos.read_photo(str(root / "IMG_0001.HEIC"))
    assert (photo.format, photo.width, photo.height) == ("HEIF", 640, 480)
    assert np.abs(photo.image.astype(int) - face).mean() < 6
    conn = index.connect(str(tmp_path / "i.sqlite"))
    summary = scan.scan(str(root), conn, _fake_factory(), "m", workers=1, progress=False)
    assert summary.photos == 1 and summary.faces == 1 and summary.skipped == []


def test_without_pillow_heif_heic_is_skipped_saying_what_to_install(tmp_path):
    pytest.importorskip("pillow_heif")
    path = tmp_path / "a.heic"
    Image.fromarray(gf.blank()).save(path, quality=50)
    code = ("import sys; sys.modules['pillow_heif'] = None\n"  # As if not installed.
            "from fer.gallery import photos\n"
            "try:\n    photos.read_photo(sys.argv[1])\n"
            "except photos.PhotoError as e:\n    print(e)\n")
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.strip() == photos.HEIF_MISSING, result.stderr
