"""`fer scan`: walk a folder, classify new or changed photos, write them to the index.

Worker processes (two by default, one per core) each own a detector and a
classifier and return results; only the parent writes SQLite, one transaction per
photo, so killing a scan loses at most the photos in flight. Every problem with a
single file (unreadable, corrupt, too large, a symlink loop) becomes a skip with a
reason; the scan goes on. A folder that cannot be listed keeps its photos in the
index (unreadable is not deleted) and is reported. Workers die with the scan: a
`fer scan` killed with SIGKILL leaves no process behind.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import errno
import functools
import hashlib
import multiprocessing
import os
import signal
import stat as stat_lib
import sqlite3
import sys
import threading
import time
from typing import Callable, Iterator

import tqdm

from fer import labels as labels_lib
from fer.gallery import analyze as analyze_lib
from fer.gallery import detect as detect_lib
from fer.gallery import index as index_lib
from fer.gallery import photos as photos_lib

AnalyzerFactory = Callable[[], analyze_lib.PhotoAnalyzer]
THUMBNAIL_SIDE = 320
GALLERY_MARKER = ".fer-gallery"  # In `fer gallery --out` folders: never scanned.


@dataclasses.dataclass
class Candidate:
    path: str
    size: int
    mtime_ns: int


@dataclasses.dataclass
class Unlisted:
    """A folder whose entries could not be read: its indexed photos are kept."""

    path: str
    reason: str


@dataclasses.dataclass
class ScanSummary:
    root: str
    found: int = 0
    classified: int = 0
    unchanged: int = 0
    removed: int = 0
    photos: int = 0
    faces: int = 0
    labels: dict[str, int] = dataclasses.field(default_factory=dict)
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    unlisted: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["skipped"] = [{"path": p, "reason": r} for p, r in self.skipped]
        d["unlisted"] = [{"path": p, "reason": r} for p, r in self.unlisted]
        return d

    def format(self) -> str:
        lines = [f"{self.root}: {self.photos} photos indexed, {self.faces} faces "
                 f"({self.classified} classified now, {self.unchanged} unchanged, "
                 f"{self.removed} removed, {len(self.skipped)} skipped)"]
        for label, count in sorted(self.labels.items(), key=lambda kv: -kv[1]):
            emoji = labels_lib.EMOJI.get(label, " ")
            lines.append(f"  {emoji} {label:<10} {count}")
        if self.skipped:
            lines.append("skipped:")
            lines += [f"  {path}: {reason}" for path, reason in self.skipped]
        if self.unlisted:
            lines.append("folders not listed (their indexed photos are kept):")
            lines += [f"  {path}: {reason}" for path, reason in self.unlisted]
        return "\n".join(lines)


def make_analyzer(model_dir: str | None, detector: str = "blazeface",
                  thumbnail_side: int | None = THUMBNAIL_SIDE) -> analyze_lib.PhotoAnalyzer:
    """A detector + LiteRT classifier pair on one thread (one per worker process)."""
    model_dir = model_dir or analyze_lib.default_model_dir()
    return analyze_lib.PhotoAnalyzer(
        detect_lib.create_detector(detector), analyze_lib.load_classifier(model_dir),
        thumbnail_side=thumbnail_side, abstain=analyze_lib.load_abstention(model_dir))


def model_fingerprint(model_dir: str, detector: str) -> str:
    """Identifies model, detector and crop, so a new one of them redoes the whole index."""
    version = detect_lib.DETECTOR_VERSIONS.get(detector, 0)
    crop = f"{detect_lib.CROP_MARGIN}:{detect_lib.CROP_LIFT}"
    digest = hashlib.sha256(f"{detector}:{version}:{crop}".encode())
    for name in sorted(os.listdir(model_dir)):
        if name.endswith((".tflite", ".json")):
            with open(os.path.join(model_dir, name), "rb") as f:
                digest.update(name.encode() + f.read())
    return f"{detector}:{digest.hexdigest()[:16]}"


def walk_photos(root: str) -> Iterator[Candidate | Unlisted | tuple[str, str]]:
    """Photo files under `root` as Candidates, or (path, reason) for unusable ones,
    or Unlisted for a folder that exists but cannot be listed.

    Directory symlinks are followed once (a loop or a second way into a folder is
    reported, not entered); file symlinks that loop or dangle are reported. Names
    without a photo extension, hidden names (".thumbnails", macOS "._IMG.jpg") and
    folders written by `fer gallery --out` (holding GALLERY_MARKER) are ignored.
    """
    seen_dirs: set[str] = set()

    def visit(directory: str) -> Iterator[Candidate | Unlisted | tuple[str, str]]:
        if not _utf8(directory):
            yield _printable(directory), "folder name is not valid UTF-8"
            return
        real = os.path.realpath(directory)
        if real in seen_dirs:
            parent = os.path.realpath(os.path.dirname(directory))
            if parent == real or parent.startswith(real.rstrip(os.sep) + os.sep):
                yield directory, "symlink loop (links to a folder above it)"
            else:
                yield directory, f"same folder as {real}, scanned once"
            return
        seen_dirs.add(real)
        if os.path.exists(os.path.join(directory, GALLERY_MARKER)):
            return
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENOTDIR):  # Else gone since its stat.
                yield Unlisted(directory, f"cannot list folder: {e.strerror or e}")
            return
        for entry in entries:
            path = entry.path
            if entry.name.startswith("."):
                continue
            if not _utf8(path):
                if photos_lib.is_photo_name(path):
                    yield _printable(path), "file name is not valid UTF-8"
                continue
            try:
                st = os.stat(path)  # Follows symlinks.
            except OSError as e:
                if entry.is_symlink() or os.path.islink(path):
                    if photos_lib.is_photo_name(path) or e.errno == errno.ELOOP:
                        reason = ("symlink loop" if e.errno == errno.ELOOP else
                                  f"broken symlink ({e.strerror})")
                        yield path, reason
                elif photos_lib.is_photo_name(path):
                    yield path, f"cannot stat: {e.strerror or e}"
                continue
            if stat_lib.S_ISDIR(st.st_mode):
                yield from visit(path)
            elif photos_lib.is_photo_name(path):
                if not stat_lib.S_ISREG(st.st_mode):
                    yield path, "not a regular file"
                else:
                    yield Candidate(path, st.st_size, st.st_mtime_ns)

    yield from visit(root)


def _utf8(path: str) -> bool:
    """SQLite stores text as UTF-8; names with undecodable bytes cannot be keys."""
    try:
        path.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _printable(path: str) -> str:
    return path.encode("utf-8", "backslashreplace").decode("utf-8")


# Worker-process state: one analyzer per process, built by the pool initializer.
_worker_analyzer: analyze_lib.PhotoAnalyzer | None = None


def _init_worker(factory: AnalyzerFactory, parent_pid: int) -> None:
    global _worker_analyzer
    _die_with_parent(parent_pid)
    _worker_analyzer = factory()


def _die_with_parent(parent_pid: int) -> None:
    """Ends this worker when the scan process dies, however it dies (even SIGKILL,
    where no cleanup of the parent runs): an orphaned worker would run forever.

    Linux: the kernel sends SIGKILL on the parent's death (PR_SET_PDEATHSIG); the
    getppid check covers a parent that died before that was set. Elsewhere a
    thread polls getppid. The resource tracker then sees all its pipes closed
    and exits too.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            _watch_parent(parent_pid)  # E.g. a sandbox refusing prctl.
    else:
        _watch_parent(parent_pid)
    if os.getppid() != parent_pid:
        os._exit(1)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _watch_parent(parent_pid: int, interval: float = 1.0) -> None:
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="fer-parent-watch", daemon=True).start()


def _analyze(candidate: Candidate, analyzer: analyze_lib.PhotoAnalyzer | None = None):
    analyzer = analyzer or _worker_analyzer
    try:
        return candidate, analyzer.analyze(candidate.path), None
    except photos_lib.PhotoError as e:
        return candidate, None, str(e)
    except Exception as e:  # One bad file must not stop the scan.
        return candidate, None, f"failed: {type(e).__name__}: {e}"


def scan(root: str, conn: sqlite3.Connection, factory: AnalyzerFactory, model_id: str, *,
         workers: int = 2, progress: bool = True,
         on_photo: Callable[[str], None] | None = None) -> ScanSummary:
    """Indexes the photos under `root` into `conn`; returns what happened.

    `factory` builds a PhotoAnalyzer (it must pickle when workers > 1); `model_id`
    tags entries so that a different model reclassifies them. `on_photo(path)` is
    called after each photo is committed.
    """
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise NotADirectoryError(f"{root} is not a directory to scan")
    summary = ScanSummary(root=root)
    todo: list[Candidate] = []
    seen: set[str] = set()
    for item in walk_photos(root):
        if isinstance(item, Unlisted):
            summary.unlisted.append((item.path, item.reason))
        elif isinstance(item, Candidate):
            summary.found += 1
            seen.add(item.path)
            if index_lib.is_current(conn, item.path, item.size, item.mtime_ns, model_id):
                summary.unchanged += 1
            else:
                todo.append(item)
        else:
            path, reason = item
            seen.add(path)
            index_lib.put_skipped(conn, path, None, None, reason)
    summary.removed = index_lib.forget_missing(
        conn, root, seen, keep_under=[path for path, _ in summary.unlisted])
    # The server checks a photo's folder is still the one scanned (fer.gallery.web).
    index_lib.record_dirs(conn, {os.path.dirname(p) for p in seen})

    def commit(candidate: Candidate, result, error: str | None) -> None:
        if error is None:
            index_lib.put_photo(conn, candidate.path, candidate.size, candidate.mtime_ns,
                                model_id, result)
            summary.classified += 1
        else:
            index_lib.put_skipped(conn, candidate.path, candidate.size,
                                  candidate.mtime_ns, error)
        if on_photo is not None:
            on_photo(candidate.path)

    bar = tqdm.tqdm(total=len(todo), unit="photo", desc="scan", disable=not progress)
    try:
        if workers <= 1 or len(todo) <= 1:
            analyzer = factory() if todo else None
            for candidate in todo:
                commit(*_analyze(candidate, analyzer))
                bar.update()
        else:
            def done(outcome) -> None:
                commit(*outcome)
                bar.update()
            _run_workers(todo, factory, min(workers, len(todo)), done)
    finally:
        bar.close()
    _fill_totals(conn, root, summary)
    return summary


CRASHED = "crashed the decoder (its worker process died); skipped"


def _run_workers(todo: list[Candidate], factory: AnalyzerFactory, workers: int,
                 done: Callable[[tuple], None]) -> None:
    """Analyzes `todo` in worker processes, calling `done(outcome)` in this process.

    A file that kills its worker (a decoder crash) must not stop the scan: when the
    pool breaks, each photo that was in flight is retried alone in a fresh
    one-worker pool, and the one that breaks that too is skipped as CRASHED.
    """
    ctx = multiprocessing.get_context("spawn")  # No forked LiteRT/thread state.
    pending = collections.deque(todo)
    while pending:
        in_flight = _drain(pending, factory, workers, ctx, done)
        for candidate in in_flight:  # Only after a crash.
            if _drain(collections.deque([candidate]), factory, 1, ctx, done):
                done((candidate, None, CRASHED))


def _drain(pending: collections.deque, factory: AnalyzerFactory, workers: int, ctx,
           done: Callable[[tuple], None]) -> list[Candidate]:
    """Runs `pending` through one pool; returns the photos in flight if it broke."""
    pool = concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(factory, os.getpid()))
    in_flight: dict[concurrent.futures.Future, Candidate] = {}
    try:
        while pending or in_flight:
            while pending and len(in_flight) < 2 * workers:  # Keep every worker busy.
                candidate = pending.popleft()
                in_flight[pool.submit(_analyze, candidate)] = candidate
            finished, _ = concurrent.futures.wait(
                in_flight, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                outcome = future.result()  # BrokenProcessPool if a worker died.
                del in_flight[future]
                done(outcome)
        return []
    except concurrent.futures.process.BrokenProcessPool:
        return list(in_flight.values())
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _fill_totals(conn: sqlite3.Connection, root: str, summary: ScanSummary) -> None:
    prefix = root.rstrip(os.sep) + os.sep
    where = "substr(path, 1, ?) = ?"
    args = (len(prefix), prefix)
    summary.photos, summary.faces = conn.execute(
        f"SELECT COUNT(*), COALESCE(SUM(num_faces), 0) FROM photos WHERE {where}",
        args).fetchone()
    counts = collections.Counter()
    for label, n in conn.execute(
            f"SELECT label, COUNT(*) FROM photos WHERE {where} GROUP BY label", args):
        counts[label or "no face"] = n
    summary.labels = dict(counts)
    summary.skipped = [(r[0], r[1]) for r in conn.execute(
        f"SELECT path, reason FROM skipped WHERE {where} ORDER BY path", args)]


def analyzer_factory(model_dir: str, detector: str) -> AnalyzerFactory:
    """A picklable factory for worker processes."""
    return functools.partial(make_analyzer, model_dir, detector)
