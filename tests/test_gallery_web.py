"""The gallery server against hostile files and requests, and the filters for group photos."""

from __future__ import annotations

import html.parser
import http.client
import json
import os
import sqlite3
import threading

import pytest

import gallery_fixtures as gf
from fer import cli
from fer.gallery import analyze, detect, filters, index, photos, scan, web

HAPPY, SAD = "happy", "sad"


def _face(label: str, box, confidence: float = 0.9) -> analyze.Face:
    return analyze.Face(box=box, detector_score=0.99, label=label, confidence=confidence,
                        probs={label: confidence})


def put_group_photo(conn: sqlite3.Connection, path: str) -> int:
    """A real file indexed as three faces, happy, happy and sad; the sad one is largest."""
    image = gf.two_faces()
    gf.save(path, image, quality=90)
    st = os.stat(path)
    faces = [_face(HAPPY, (0.05, 0.3, 0.12, 0.2), 0.97),
             _face(SAD, (0.4, 0.25, 0.25, 0.4), 0.61),
             _face(HAPPY, (0.75, 0.3, 0.1, 0.15), 0.88)]
    result = analyze.PhotoResult(image.shape[1], image.shape[0], faces, {},
                                 photos.thumbnail_jpeg(image, scan.THUMBNAIL_SIDE))
    photo_id = index.put_photo(conn, path, st.st_size, st.st_mtime_ns, "m", result)
    index.record_dirs(conn, {os.path.dirname(path)})
    return photo_id


def _factory():
    analyzer = analyze.PhotoAnalyzer(detect.BlazeFaceDetector(), gf.FakeClassifier(),
                                     thumbnail_side=scan.THUMBNAIL_SIDE)
    return lambda: analyzer


# --- Filters ------------------------------------------------------------------

def test_group_photo_filters_in_each_mode():
    faces = [{"label": HAPPY, "box": [0, 0, .1, .1]}, {"label": HAPPY, "box": [.2, 0, .1, .1]},
             {"label": SAD, "box": [.5, 0, .3, .3]}]
    assert filters.photo_filters(faces, "any") == {HAPPY, SAD, analyze.MULTIPLE}
    assert filters.photo_filters(faces, "all") == {analyze.MULTIPLE}
    assert filters.photo_filters(faces, "largest") == {SAD, analyze.MULTIPLE}
    assert filters.photo_filters(faces[:2], "all") == {HAPPY, analyze.MULTIPLE}
    for mode in filters.MODES:
        assert filters.photo_filters(faces[:1], mode) == {HAPPY}
        assert filters.photo_filters([], mode) == {filters.NO_FACE}
    with pytest.raises(ValueError, match="mode"):
        filters.photo_filters(faces, "most")
    assert filters.parse_label("Happiness") == HAPPY
    assert filters.parse_label("no face") == filters.NO_FACE
    with pytest.raises(ValueError, match="unknown expression label"):
        filters.parse_label("bored")


@pytest.fixture(scope="module")
def mixed_index(tmp_path_factory):
    """A group photo, a one-face photo per label and a blank photo; db path and paths."""
    tmp = tmp_path_factory.mktemp("mixed")
    root = tmp / "photos"
    root.mkdir()
    conn = index.connect(str(tmp / "i.sqlite"))
    paths = {"group": str(root / "group.jpg")}
    put_group_photo(conn, paths["group"])
    for name, faces in (("sad", [_face(SAD, (.3, .3, .2, .2))]),
                        ("happy", [_face(HAPPY, (.3, .3, .2, .2))]), ("blank", [])):
        path = gf.save(str(root / f"{name}.png"), gf.blank())
        st = os.stat(path)
        index.put_photo(conn, path, st.st_size, st.st_mtime_ns, "m",
                        analyze.PhotoResult(640, 480, faces, {}))
        paths[name] = path
    conn.close()
    return str(tmp / "i.sqlite"), paths


@pytest.mark.parametrize("mode,label,expected", [
    ("any", HAPPY, {"group", "happy"}), ("any", SAD, {"group", "sad"}),
    ("all", HAPPY, {"happy"}), ("all", SAD, {"sad"}),
    ("largest", HAPPY, {"happy"}), ("largest", SAD, {"group", "sad"}),
    ("any", "multiple", {"group"}), ("all", "none", {"blank"}),
])
def test_fer_filter_and_the_page_agree_on_group_photos(mixed_index, capsys, mode, label,
                                                       expected):
    db, paths = mixed_index
    assert cli.main(["filter", "--label", label, "--mode", mode, "--db", db]) == 0
    printed = set(capsys.readouterr().out.split())
    assert printed == {paths[name] for name in expected}
    conn = index.open_read_only(db)
    page = web.gallery_data(conn, serve=True)
    conn.close()
    assert {p["path"] for p in page["photos"] if label in p["filters"][mode]} == printed
    if mode == "any":  # The default mode.
        assert cli.main(["filter", "--label", label, "--db", db]) == 0
        assert set(capsys.readouterr().out.split()) == printed


# --- Page ---------------------------------------------------------------------

class _PageParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.title, self.data, self._in = "", None, None

    def handle_starttag(self, tag, attrs):
        self._in = "data" if dict(attrs).get("id") == "data" else tag

    def handle_data(self, text):
        if self._in == "title":
            self.title += text
        elif self._in == "data":
            self.data = (self.data or "") + text

    def handle_endtag(self, tag):
        self._in = None


HOSTILE_NAMES = ("<!--<script>.jpg", "__TITLE__.jpg", "__DATA__ <b>&amp;.jpg",
                 "line\u2028sep.jpg")


def test_hostile_file_names_cannot_break_the_page(tmp_path):
    conn = index.connect(str(tmp_path / "i.sqlite"))
    # A folder named "x<" puts "</script>" into a photo's path.
    for path in [tmp_path / name for name in HOSTILE_NAMES] + [tmp_path / "x<" / "script>.jpg"]:
        index.put_photo(conn, str(path), 1, 1, "m",
                        analyze.PhotoResult(10, 10, [_face(HAPPY, (0, 0, 1, 1))], {}))
    page = web.render_page(conn, serve=False)
    data = web.gallery_data(conn, serve=False)
    assert {p["name"] for p in data["photos"]} >= set(HOSTILE_NAMES)
    parser = _PageParser()
    parser.feed(page)
    assert parser.title == "fer gallery: 5 photos"
    assert json.loads(parser.data) == data
    assert not any(c in parser.data for c in "<>&\u2028\u2029")
    assert page.count("<script") == 2 and page.count("</script>") == 2


# --- Server -------------------------------------------------------------------

@pytest.fixture()
def served(tmp_path):
    root = tmp_path / "photos"
    good = gf.write_good_photos(str(root))
    db = str(tmp_path / "i.sqlite")
    conn = index.connect(db)
    scan.scan(str(root), conn, _factory(), "m", workers=1, progress=False)
    ids = {p["path"]: p["id"] for p in index.photos(conn)}
    conn.close()
    server = web.make_server(db, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], db, good, ids, tmp_path
    server.shutdown()
    server.server_close()


def _request(port, path, method="GET", host=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest(method, path, skip_host=host is not None)
    if host is not None and host != "":
        conn.putheader("Host", host)
    conn.endheaders()
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def _secret(path, size: int, like: str | None = None) -> str:
    """A secret file of `size` bytes, with `like`'s mtime if given."""
    with open(path, "wb") as f:
        f.write((b"SECRET " * size)[:size])
    if like:
        st = os.stat(like)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    return str(path)


def test_a_photo_swapped_for_a_link_or_another_file_is_not_served(served):
    port, _, good, ids, tmp = served
    photo = good["astronaut.jpg"]
    assert _request(port, f"/photos/{ids[photo]}")[0] == 200
    size = os.path.getsize(photo)
    secret = _secret(tmp / "secret.txt", size, like=photo)  # Same size and mtime.
    os.replace(photo, tmp / "moved.jpg")
    os.symlink(secret, photo)
    status, _, body = _request(port, f"/photos/{ids[photo]}")
    assert status == 404 and b"SECRET" not in body
    # A regular file in its place, with another mtime, is not the indexed photo either.
    os.remove(photo)
    _secret(photo, size)
    os.utime(photo, ns=(1, 1))
    status, _, body = _request(port, f"/photos/{ids[photo]}")
    assert status == 404 and b"SECRET" not in body


def test_a_folder_swapped_for_a_link_is_not_served(served):
    port, _, good, ids, tmp = served
    photo = good["astronaut.jpg"]
    folder = os.path.dirname(photo)
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    # A same-named, same-size, same-mtime secret in another folder.
    _secret(elsewhere / os.path.basename(photo), os.path.getsize(photo), like=photo)
    os.rename(folder, tmp / "real_photos")
    os.symlink(elsewhere, folder)
    status, _, body = _request(port, f"/photos/{ids[photo]}")
    assert status == 404 and b"SECRET" not in body


def test_photos_reached_through_a_linked_folder_are_served(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    gf.save(str(outside / "a.jpg"), gf.blank(), quality=90)
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "linked")
    db = str(tmp_path / "i.sqlite")
    conn = index.connect(db)
    scan.scan(str(root), conn, _factory(), "m", workers=1, progress=False)
    (photo_id,) = [p["id"] for p in index.photos(conn)]
    conn.close()
    server = web.make_server(db, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        status, headers, body = _request(server.server_address[1], f"/photos/{photo_id}")
        assert status == 200 and body == (outside / "a.jpg").read_bytes()
        assert headers["Content-Type"] == "image/jpeg"
    finally:
        server.shutdown()
        server.server_close()


def test_without_recorded_folders_only_link_free_paths_are_served(tmp_path):
    """An index from before the dirs table: nothing to compare a resolved folder to."""
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "alias")
    conn = index.connect(str(tmp_path / "i.sqlite"))
    ids = {}
    for folder in ("real", "alias"):
        path = gf.save(str(tmp_path / folder / f"{folder}.jpg"), gf.blank(), quality=90)
        st = os.stat(path)
        ids[folder] = index.put_photo(conn, path, st.st_size, st.st_mtime_ns, "m",
                                      analyze.PhotoResult(640, 480, [], {}))
    conn.close()
    server = web.make_server(str(tmp_path / "i.sqlite"), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        assert _request(port, f"/photos/{ids['real']}")[0] == 200
        assert _request(port, f"/photos/{ids['alias']}")[0] == 404
        conn = index.connect(str(tmp_path / "i.sqlite"))
        index.record_dirs(conn, {str(tmp_path / "alias")})  # As a rescan does.
        conn.close()
        assert _request(port, f"/photos/{ids['alias']}")[0] == 200
    finally:
        server.shutdown()
        server.server_close()


def test_only_requests_addressed_to_this_server_are_answered(served):
    port = served[0]
    for host in ("evil.example.com", f"evil.example.com:{port}", f"127.0.0.1:{port + 1}",
                 f"localhost.evil.example.com:{port}", ""):
        status, _, body = _request(port, "/", host=host)
        assert status == 403 and b"fer gallery" not in body, host
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
        assert _request(port, "/", host=host)[0] == 200, host


@pytest.mark.parametrize("host,names,any_ip,allowed", [
    ("127.0.0.1:8000", {"127.0.0.1"}, False, True),
    ("[::1]:8000", {"[::1]"}, False, True),
    ("[::1]", {"[::1]"}, False, False),           # Port 80 implied.
    ("192.168.1.5:8000", {"127.0.0.1"}, False, False),
    ("192.168.1.5:8000", {"0.0.0.0"}, True, True),  # Bound to every interface.
    ("rebound.example:8000", {"0.0.0.0"}, True, False),
    (None, {"127.0.0.1"}, False, False),
])
def test_host_header_rule(host, names, any_ip, allowed):
    assert web.host_allowed(host, names, 8000, any_ip) == allowed


def test_head_answers_headers_without_a_body(served):
    port, _, good, ids, _ = served
    for path in ("/", f"/photos/{ids[good['astronaut.jpg']]}",
                 f"/thumbs/{ids[good['astronaut.jpg']]}.jpg", "/nothing"):
        get_status, get_headers, get_body = _request(port, path)
        status, headers, body = _request(port, path, method="HEAD")
        assert (status, body) == (get_status, b"")
        assert headers["Content-Length"] == str(len(get_body)) == get_headers[
            "Content-Length"]


def test_a_deleted_index_is_a_503_and_is_not_recreated(served):
    port, db, *_ = served
    assert _request(port, "/")[0] == 200
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    status, _, body = _request(port, "/")
    assert status == 503 and b"fer scan" in body
    assert not os.path.exists(db)


def test_a_port_in_use_is_one_clear_line(served, capsys):
    port, db, *_ = served
    assert cli.main(["gallery", "--db", db, "--serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in err
    assert "Traceback" not in err


def test_fer_model_that_is_not_a_model_is_an_error_naming_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv(analyze.MODEL_ENV, "/nonexistent")
    with pytest.raises(FileNotFoundError, match="FER_MODEL=/nonexistent"):
        analyze.default_model_dir()
    assert cli.main(["predict", str(tmp_path / "x.jpg")]) == 2
    assert "FER_MODEL=/nonexistent" in capsys.readouterr().err
