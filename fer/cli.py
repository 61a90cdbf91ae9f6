"""The `fer` console script: scan, filter, predict, gallery (also `python -m fer`).

  fer scan DIR [--db PATH] [--model DIR] [--detector blazeface|haar] [--workers N]
  fer filter --label happy [--mode any|all|largest] [--db PATH]
  fer predict PHOTO|DIR... [--csv] [--model DIR] [--detector ...]
  fer gallery [--db PATH] [--out DIR | --serve [--host 127.0.0.1] [--port 8000]]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

from fer.gallery import analyze as analyze_lib
from fer.gallery import filters as filters_lib
from fer.gallery.index import DEFAULT_DB


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="DIR", default=None,
                   help="exported model directory (model.tflite + model.json); default: "
                        "$FER_MODEL or the model shipped in fer/assets/model")
    p.add_argument("--detector", choices=("blazeface", "haar"), default="blazeface",
                   help="face detector (default: blazeface)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fer", description="Find faces in photos, classify their expressions, "
                                "index and browse them.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("scan", help="index every photo under DIR (incremental)")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--db", default=DEFAULT_DB, help=f"index file (default: {DEFAULT_DB})")
    _add_model_args(p)
    p.add_argument("--workers", type=int, default=2,
                   help="worker processes (default: 2, one per core)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("filter", help="print indexed photos with an expression")
    p.add_argument("--label", required=True,
                   help="expression (any spelling, e.g. happy, happiness), 'multiple' "
                        "(several faces) or 'none' (no face)")
    p.add_argument("--mode", choices=filters_lib.MODES, default=filters_lib.DEFAULT_MODE,
                   help="which faces must show the expression: any (default), all, or "
                        "the largest")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--json", action="store_true", help="JSON lines with faces")

    p = sub.add_parser("predict", help="classify photos (every photo under a folder) now; "
                                       "JSON or CSV out")
    p.add_argument("photos", nargs="+", metavar="PHOTO|DIR",
                   help="photos, or folders to walk as `fer scan` does")
    p.add_argument("--csv", action="store_true",
                   help="CSV instead of JSON: one row per face (box in pixels, label, "
                        "confidence, one column per class), one per photo without a face "
                        "(empty label) or that could not be read (error column)")
    _add_model_args(p)

    p = sub.add_parser("gallery", help="web page of the index")
    p.add_argument("--db", default=DEFAULT_DB)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", metavar="DIR", help="write index.html + thumbs/ here")
    where.add_argument("--serve", action="store_true", help="serve on http://HOST:PORT")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind with --serve (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port with --serve (0: any free)")
    return parser


def _scan(args) -> int:
    from fer.gallery import index as index_lib
    from fer.gallery import scan as scan_lib

    model_dir = args.model or analyze_lib.default_model_dir()
    factory = scan_lib.analyzer_factory(model_dir, args.detector)
    analyzer = factory()  # Fail fast (bad model, no detector) before walking the tree.
    if args.workers <= 1:
        factory = lambda: analyzer  # noqa: E731 (in-process: reuse it)
    conn = index_lib.connect(args.db)
    try:
        summary = scan_lib.scan(
            args.dir, conn, factory, scan_lib.model_fingerprint(model_dir, args.detector),
            workers=args.workers, progress=not args.quiet)
    except KeyboardInterrupt:
        count = conn.execute("SELECT COUNT(*) FROM photos").fetchone()[0]
        print(f"\ninterrupted: {count} photos are in {args.db}; run the same command "
              f"to resume", file=sys.stderr)
        return 130
    finally:
        conn.close()
    print(json.dumps(summary.to_json(), indent=2) if args.json else summary.format())
    return 0


def _filter(args) -> int:
    from fer.gallery import index as index_lib

    label = filters_lib.parse_label(args.label)
    conn = index_lib.open_existing(args.db)
    try:
        for photo in filters_lib.select(index_lib.photos(conn), label, args.mode):
            if args.json:
                print(json.dumps({k: photo[k] for k in (
                    "path", "label", "confidence", "faces")}, ensure_ascii=False))
            else:
                print(photo["path"])
    finally:
        conn.close()
    return 0


def _predict(args) -> int:
    """Streams one JSON list item (or CSV rows) per photo, so a long run keeps its output."""
    import csv
    import textwrap

    from fer import api

    model = api.FER(args.model, args.detector)
    writer = csv.writer(sys.stdout, lineterminator="\n") if args.csv else None
    if writer:
        writer.writerow(api.csv_header(model.labels))
    else:
        print("[", end="")
    photos = failed = 0
    for path, result, error in model.results(args.photos):
        photos, failed = photos + 1, failed + (error is not None)
        if writer:
            faces = None if result is None else api.faces_of(result)
            writer.writerows(api.csv_rows(api.PhotoFaces(path, faces, error), model.labels))
        else:
            item = {"path": path, "error": error} if error else {"path": path,
                                                                 **result.to_json()}
            text = json.dumps(item, indent=2, ensure_ascii=False)
            print("," * (photos > 1) + "\n" + textwrap.indent(text, "  "), end="")
        sys.stdout.flush()
    if not writer:
        print("\n]" if photos else "]")
    if not photos:
        print("fer predict: no photos found", file=sys.stderr)
    return 1 if failed == photos else 0


def _gallery(args) -> int:
    from fer.gallery import web

    if args.out:
        page = web.write_static(args.db, args.out)
        print(f"wrote {page}")
        return 0
    try:
        server = web.make_server(args.db, args.host, args.port)
    except OSError as e:
        if isinstance(e, FileNotFoundError):
            raise
        print(f"fer gallery: error: cannot listen on {args.host}:{args.port}: "
              f"{e.strerror or e}", file=sys.stderr)
        return 2
    host, port = server.server_address[:2]
    host = f"[{host}]" if ":" in host else host  # An IPv6 address in a URL.
    print(f"serving {os.path.abspath(args.db)} at http://{host}:{port}/ (Ctrl-C stops)",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = {"scan": _scan, "filter": _filter, "predict": _predict,
               "gallery": _gallery}[args.command]
    try:
        return command(args)
    except (FileNotFoundError, NotADirectoryError, ValueError) as e:
        print(f"fer {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
