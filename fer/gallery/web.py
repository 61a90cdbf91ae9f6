"""`fer gallery`: a one-page web gallery of the index, written to a folder or served.

The page is self-contained (inline CSS and JS, photo data as JSON); thumbnails
come from the index. The server answers only `/`, `/thumbs/<id>.jpg` and
`/photos/<id>` for ids in the index: a URL never names a file path, so there is
nothing to traverse.
"""

from __future__ import annotations

import html
import http.server
import json
import mimetypes
import os
import pathlib
import re
import sqlite3
import urllib.parse

from fer import labels as labels_lib
from fer.gallery import index as index_lib
from fer.gallery.analyze import MULTIPLE
from fer.gallery.scan import GALLERY_MARKER

NO_FACE = "none"
_THUMB_ROUTE = re.compile(r"^/thumbs/([0-9]{1,18})\.jpg$")
_PHOTO_ROUTE = re.compile(r"^/photos/([0-9]{1,18})$")


def label_order(present: set[str]) -> list[str]:
    """Filter-bar order: canonical expression order, then `multiple`."""
    ordered = [label for label in labels_lib.CANONICAL if label in present]
    ordered += sorted(present - set(ordered) - {MULTIPLE})  # Labels of future models.
    return ordered + ([MULTIPLE] if MULTIPLE in present else [])


def gallery_data(conn: sqlite3.Connection, serve: bool) -> dict:
    items = []
    for photo in index_lib.photos(conn):
        items.append({
            "id": photo["id"],
            "name": os.path.basename(photo["path"]),
            "path": photo["path"],
            "href": (f"photos/{photo['id']}" if serve
                     else pathlib.Path(photo["path"]).as_uri()),
            "thumb": f"thumbs/{photo['id']}.jpg",
            "label": photo["label"] or NO_FACE,
            "confidence": photo["confidence"],
            "faces": [{"box": f["box"], "label": f["label"],
                       "confidence": f["confidence"]} for f in photo["faces"]],
        })
    present = {i["label"] for i in items} - {NO_FACE}
    emoji = {label: labels_lib.EMOJI.get(label, "") for label in present}
    for item in items:
        for face in item["faces"]:
            emoji.setdefault(face["label"], labels_lib.EMOJI.get(face["label"], ""))
    return {"photos": items, "labels": label_order(present), "emoji": emoji}


def render_page(conn: sqlite3.Connection, serve: bool = False) -> str:
    data = gallery_data(conn, serve)
    # "</" cannot end the script block early once escaped.
    payload = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    return _PAGE.replace("__DATA__", payload).replace(
        "__TITLE__", html.escape(f"fer gallery: {len(data['photos'])} photos"))


def write_static(db_path: str, out_dir: str) -> str:
    """Writes index.html and thumbs/ under `out_dir`; returns the page's path."""
    conn = index_lib.open_existing(db_path)
    try:
        thumbs = os.path.join(out_dir, "thumbs")
        os.makedirs(thumbs, exist_ok=True)
        with open(os.path.join(out_dir, GALLERY_MARKER), "w") as f:
            f.write("written by `fer gallery --out`; `fer scan` skips this folder\n")
        for photo_id, blob in conn.execute("SELECT id, thumbnail FROM photos"):
            if blob:
                with open(os.path.join(thumbs, f"{photo_id}.jpg"), "wb") as f:
                    f.write(blob)
        page = os.path.join(out_dir, "index.html")
        with open(page, "w", encoding="utf-8") as f:
            f.write(render_page(conn, serve=False))
    finally:
        conn.close()
    return page


class _Handler(http.server.BaseHTTPRequestHandler):
    db_path: str = ""
    server_version = "fer-gallery"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = urllib.parse.urlsplit(self.path).path
        conn = index_lib.connect(self.db_path)
        try:
            if path in ("/", "/index.html"):
                body = render_page(conn, serve=True).encode()
                return self._send(200, body, "text/html; charset=utf-8")
            if m := _THUMB_ROUTE.match(path):
                blob = index_lib.thumbnail(conn, int(m.group(1)))
                if blob:
                    return self._send(200, blob, "image/jpeg")
            elif m := _PHOTO_ROUTE.match(path):
                photo_path = index_lib.photo_path(conn, int(m.group(1)))
                if photo_path:
                    try:
                        with open(photo_path, "rb") as f:
                            body = f.read()
                    except OSError:
                        return self._send(410, b"photo no longer readable", "text/plain")
                    kind = mimetypes.guess_type(photo_path)[0] or "application/octet-stream"
                    return self._send(200, body, kind)
            self._send(404, b"not found", "text/plain")
        finally:
            conn.close()

    def _send(self, code: int, body: bytes, kind: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # Quiet by default.
        pass


def make_server(db_path: str, host: str = "127.0.0.1", port: int = 8000
                ) -> http.server.ThreadingHTTPServer:
    """An HTTP server for the index at `db_path` (port 0 picks a free port)."""
    index_lib.open_existing(db_path).close()
    handler = type("GalleryHandler", (_Handler,), {"db_path": os.path.abspath(db_path)})
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


_PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
  :root { --bg:#f5f5f4; --card:#fff; --ink:#1c1917; --muted:#78716c; --accent:#2563eb; }
  * { box-sizing:border-box; }
  body { margin:0; font:15px/1.4 system-ui, sans-serif; background:var(--bg); color:var(--ink); }
  header { position:sticky; top:0; z-index:2; background:var(--card);
           border-bottom:1px solid #e7e5e4; padding:12px 20px; }
  h1 { font-size:18px; margin:0 0 10px; font-weight:600; }
  #filters { display:flex; gap:8px; overflow-x:auto; padding-bottom:2px; }
  #filters button { border:1px solid #d6d3d1; background:var(--card); border-radius:999px;
           padding:6px 14px; font:inherit; cursor:pointer; white-space:nowrap; }
  #filters button.active { background:var(--accent); border-color:var(--accent); color:#fff; }
  main { display:grid; grid-template-columns:repeat(auto-fill, minmax(190px, 1fr));
         gap:16px; padding:20px; }
  figure { margin:0; background:var(--card); border-radius:10px; overflow:hidden;
           box-shadow:0 1px 3px rgba(0,0,0,.12); }
  .frame { position:relative; aspect-ratio:4/3; background:#e7e5e4; }
  .frame img { position:absolute; inset:0; width:100%; height:100%; object-fit:contain; }
  .box { position:absolute; border:2px solid rgba(37,99,235,.9); border-radius:3px; }
  figcaption { padding:8px 10px; display:flex; justify-content:space-between;
               align-items:baseline; gap:6px; }
  .main { white-space:nowrap; flex:none; }
  .label { font-weight:600; white-space:nowrap; } .conf { text-align:right; } .emoji { font-size:20px; margin-right:4px; }
  .conf, .name { color:var(--muted); font-size:13px; }
  .name { padding:0 10px 8px; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
  .empty { color:var(--muted); padding:20px; }
</style></head>
<body>
<header><h1>__TITLE__</h1><nav id="filters"></nav></header>
<main id="grid"></main>
<script id="data" type="application/json">__DATA__</script>
<script>
const data = JSON.parse(document.getElementById('data').textContent);
const grid = document.getElementById('grid'), bar = document.getElementById('filters');
const pct = c => c == null ? '' : Math.round(100 * c) + '%';

function caption(p) {
  if (p.label === 'none') return ['', 'no face', ''];
  if (p.label === 'multiple')
    return [data.emoji.multiple, 'multiple',
            p.faces.map(f => data.emoji[f.label] + pct(f.confidence)).join(' ')];
  return [data.emoji[p.label], p.label, pct(p.confidence)];
}

function card(p) {
  const fig = document.createElement('figure');
  fig.className = 'photo'; fig.dataset.label = p.label; fig.dataset.id = p.id;
  const a = document.createElement('a'); a.href = p.href; a.className = 'frame';
  a.target = '_blank'; a.rel = 'noopener'; a.style.display = 'block';
  const img = document.createElement('img');
  img.src = p.thumb; img.alt = p.name; img.loading = 'lazy';
  a.appendChild(img);
  img.addEventListener('load', () => {   // Face boxes over the contained image.
    const fw = a.clientWidth, fh = a.clientHeight;
    const s = Math.min(fw / img.naturalWidth, fh / img.naturalHeight);
    const w = img.naturalWidth * s, h = img.naturalHeight * s;
    const ox = (fw - w) / 2, oy = (fh - h) / 2;
    for (const f of p.faces) {
      const b = document.createElement('div'); b.className = 'box';
      b.title = f.label + ' ' + pct(f.confidence);
      Object.assign(b.style, {left: ox + f.box[0] * w + 'px', top: oy + f.box[1] * h + 'px',
                              width: f.box[2] * w + 'px', height: f.box[3] * h + 'px'});
      a.appendChild(b);
    }
  });
  const [emoji, label, conf] = caption(p);
  const cap = document.createElement('figcaption');
  cap.innerHTML = '<span class="main"><span class="emoji"></span><span class="label"></span></span>' +
                  '<span class="conf"></span>';
  cap.querySelector('.emoji').textContent = emoji;
  cap.querySelector('.label').textContent = label;
  cap.querySelector('.conf').textContent = conf;
  const name = document.createElement('div'); name.className = 'name';
  name.textContent = p.name; name.title = p.path;
  fig.append(a, cap, name);
  return fig;
}

function show(label) {
  for (const b of bar.children) b.classList.toggle('active', b.dataset.filter === label);
  let shown = 0;
  for (const fig of grid.querySelectorAll('figure')) {
    const visible = label === 'all' || fig.dataset.label === label;
    fig.hidden = !visible; shown += visible;
  }
  document.getElementById('empty')?.remove();
  if (!shown) grid.insertAdjacentHTML('beforeend', '<p id="empty" class="empty">No photos.</p>');
}

function button(filter, text) {
  const b = document.createElement('button');
  b.dataset.filter = filter; b.textContent = text;
  b.addEventListener('click', () => show(filter));
  bar.appendChild(b);
}

button('all', 'All ' + data.photos.length);
for (const label of data.labels) {
  const n = data.photos.filter(p => p.label === label).length;
  button(label, data.emoji[label] + ' ' + label + ' ' + n);
}
for (const p of data.photos) grid.appendChild(card(p));
show('all');
</script>
</body></html>
"""
