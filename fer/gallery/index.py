"""The photo index: one SQLite file holding photos, their faces, thumbnails and skips.

Each photo is written in its own transaction, so a scan killed at any moment keeps
every photo it finished, and the next scan only looks at files whose size, mtime
or model changed. Boxes are stored as fractions of the upright photo, so they do
not depend on the resolution a photo was decoded at.
"""

from __future__ import annotations

import json
import os
import pathlib
import sqlite3
import time
from typing import Iterable, Iterator

from fer.gallery.analyze import PhotoResult

DEFAULT_DB = "fer-gallery.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS photos (
  id INTEGER PRIMARY KEY,
  path TEXT NOT NULL UNIQUE,
  size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  model TEXT NOT NULL,
  width INTEGER NOT NULL,
  height INTEGER NOT NULL,
  label TEXT,
  confidence REAL,
  num_faces INTEGER NOT NULL,
  thumbnail BLOB,
  scanned_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS photos_label ON photos(label);
CREATE TABLE IF NOT EXISTS faces (
  id INTEGER PRIMARY KEY,
  photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
  x REAL NOT NULL, y REAL NOT NULL, w REAL NOT NULL, h REAL NOT NULL,
  detector_score REAL NOT NULL,
  label TEXT NOT NULL,
  confidence REAL NOT NULL,
  probs TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS faces_photo ON faces(photo_id);
CREATE TABLE IF NOT EXISTS skipped (
  path TEXT PRIMARY KEY,
  size INTEGER, mtime_ns INTEGER,
  reason TEXT NOT NULL
);
-- Each folder that held indexed photos, with its real path when scanned: the
-- server refuses a photo whose folder has since been swapped for a link.
CREATE TABLE IF NOT EXISTS dirs (path TEXT PRIMARY KEY, real TEXT NOT NULL);
"""


def connect(db_path: str) -> sqlite3.Connection:
    """Opens (creating if needed) the index at `db_path`."""
    parent = os.path.dirname(os.path.abspath(db_path))
    os.makedirs(parent, exist_ok=True)
    conn = sqlite3.connect(db_path, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA journal_mode = WAL")  # Readers (the web page) never block a scan.
    conn.execute("PRAGMA synchronous = NORMAL")
    with conn:
        conn.executescript(_SCHEMA)
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                     (str(SCHEMA_VERSION),))
    version = conn.execute(
        "SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    if int(version) != SCHEMA_VERSION:
        raise RuntimeError(f"index {db_path} has schema {version}; this fer reads "
                           f"{SCHEMA_VERSION}: scan into a new --db")
    return conn


def open_existing(db_path: str) -> sqlite3.Connection:
    """Opens an index that must exist already (filter, gallery)."""
    if not os.path.exists(db_path):
        raise FileNotFoundError(f"no photo index at {db_path}: run `fer scan DIR --db "
                                f"{db_path}` first")
    return connect(db_path)


def open_read_only(db_path: str) -> sqlite3.Connection:
    """Opens an existing index for reading only: a deleted one is never recreated.

    Raises FileNotFoundError when the file is gone (sqlite3 cannot open it).
    """
    uri = pathlib.Path(os.path.abspath(db_path)).as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=30)
        conn.execute("SELECT 1 FROM photos LIMIT 1")
    except sqlite3.OperationalError as e:
        raise FileNotFoundError(f"photo index {db_path} cannot be read ({e}): it was "
                                f"moved or deleted; run `fer scan DIR --db {db_path}`") from e
    conn.row_factory = sqlite3.Row
    return conn


def is_current(conn: sqlite3.Connection, path: str, size: int, mtime_ns: int,
               model: str) -> bool:
    """Whether `path` is indexed (or skipped) with this size, mtime and model."""
    row = conn.execute("SELECT size, mtime_ns, model FROM photos WHERE path=?",
                       (path,)).fetchone()
    if row is not None:
        return (row["size"], row["mtime_ns"], row["model"]) == (size, mtime_ns, model)
    row = conn.execute("SELECT size, mtime_ns FROM skipped WHERE path=?", (path,)).fetchone()
    return row is not None and (row["size"], row["mtime_ns"]) == (size, mtime_ns)


def put_photo(conn: sqlite3.Connection, path: str, size: int, mtime_ns: int, model: str,
              result: PhotoResult) -> int:
    """Replaces `path`'s entry with `result` in one transaction; returns its id."""
    with conn:
        conn.execute("DELETE FROM skipped WHERE path=?", (path,))
        row = conn.execute("SELECT id FROM photos WHERE path=?", (path,)).fetchone()
        values = (size, mtime_ns, model, result.width, result.height, result.label,
                  result.confidence, len(result.faces), result.thumbnail, time.time())
        if row is None:
            photo_id = conn.execute(
                "INSERT INTO photos (size, mtime_ns, model, width, height, label, "
                "confidence, num_faces, thumbnail, scanned_at, path) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)", values + (path,)).lastrowid
        else:  # Keep the id stable: gallery links stay valid across rescans.
            photo_id = row["id"]
            conn.execute(
                "UPDATE photos SET size=?, mtime_ns=?, model=?, width=?, height=?, "
                "label=?, confidence=?, num_faces=?, thumbnail=?, scanned_at=? "
                "WHERE id=?", values + (photo_id,))
            conn.execute("DELETE FROM faces WHERE photo_id=?", (photo_id,))
        conn.executemany(
            "INSERT INTO faces (photo_id, x, y, w, h, detector_score, label, confidence, "
            "probs) VALUES (?,?,?,?,?,?,?,?,?)",
            [(photo_id, *face.box, face.detector_score, face.label, face.confidence,
              json.dumps(face.probs)) for face in result.faces])
    return photo_id


def put_skipped(conn: sqlite3.Connection, path: str, size: int | None,
                mtime_ns: int | None, reason: str) -> None:
    with conn:
        conn.execute("DELETE FROM photos WHERE path=?", (path,))
        conn.execute("INSERT OR REPLACE INTO skipped VALUES (?,?,?,?)",
                     (path, size, mtime_ns, reason))


def forget_missing(conn: sqlite3.Connection, root: str, seen: set[str],
                   keep_under: Iterable[str] = ()) -> int:
    """Drops entries under `root` whose files are gone; returns how many photos.

    Entries under a folder in `keep_under` (one that could not be listed, so its
    files were not seen) are kept: unreadable is not deleted.
    """
    prefix = root.rstrip(os.sep) + os.sep
    kept = tuple(folder.rstrip(os.sep) + os.sep for folder in keep_under)

    def missing(table: str) -> list[str]:
        return [r["path"] for r in conn.execute(
            f"SELECT path FROM {table} WHERE substr(path, 1, ?) = ?", (len(prefix), prefix))
            if r["path"] not in seen and not r["path"].startswith(kept)]

    gone, skipped_gone = missing("photos"), missing("skipped")
    with conn:
        conn.executemany("DELETE FROM photos WHERE path=?", [(p,) for p in gone])
        conn.executemany("DELETE FROM skipped WHERE path=?", [(p,) for p in skipped_gone])
    return len(gone)


def record_dirs(conn: sqlite3.Connection, dirs: set[str]) -> None:
    """Remembers the real path of each folder (as the scan named it) holding photos."""
    with conn:
        conn.executemany("INSERT OR REPLACE INTO dirs VALUES (?, ?)",
                         [(d, os.path.realpath(d)) for d in sorted(dirs)])


def photos(conn: sqlite3.Connection) -> Iterator[dict]:
    """Every indexed photo with its faces (detector order), by path."""
    faces: dict[int, list[dict]] = {}
    for f in conn.execute("SELECT * FROM faces ORDER BY photo_id, id"):
        faces.setdefault(f["photo_id"], []).append({
            "box": [f["x"], f["y"], f["w"], f["h"]], "label": f["label"],
            "confidence": f["confidence"], "detector_score": f["detector_score"],
            "probs": json.loads(f["probs"])})
    for row in conn.execute("SELECT id, path, width, height, label, confidence, num_faces "
                            "FROM photos ORDER BY path").fetchall():
        yield {**dict(row), "faces": faces.get(row["id"], [])}


def thumbnail(conn: sqlite3.Connection, photo_id: int) -> bytes | None:
    row = conn.execute("SELECT thumbnail FROM photos WHERE id=?", (photo_id,)).fetchone()
    return None if row is None else row["thumbnail"]


def photo_file(conn: sqlite3.Connection, photo_id: int) -> dict | None:
    """What the scan saw of photo `photo_id`: path, size, mtime_ns and its folder's
    real path then (None for an index written before folders were recorded)."""
    row = conn.execute("SELECT path, size, mtime_ns FROM photos WHERE id=?",
                       (photo_id,)).fetchone()
    if row is None:
        return None
    try:
        real = conn.execute("SELECT real FROM dirs WHERE path=?",
                            (os.path.dirname(row["path"]),)).fetchone()
    except sqlite3.OperationalError:  # Read-only index older than the dirs table.
        real = None
    return {**dict(row), "dir_real": None if real is None else real[0]}
