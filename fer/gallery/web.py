"""`fer gallery`: a one-page web gallery of the index, written to a folder or served.

The page is self-contained (inline CSS and JS, photo data as JSON); thumbnails
come from the index. The server answers only `/`, `/thumbs/<id>.jpg` and
`/photos/<id>` for ids in the index: a URL never names a file path. It serves a
photo only while it is still the regular file the scan indexed (same folder,
no link in its place, same size and mtime), answers only requests addressed to
it by a loopback name or its own address (no DNS rebinding), and only reads the
index (a deleted index is a 503, never recreated).
"""

from __future__ import annotations

import html
import http.server
import ipaddress
import json
import mimetypes
import os
import pathlib
import re
import socket
import sqlite3
import stat
import urllib.parse

from fer import labels as labels_lib
from fer.evaluation.abstention import UNCERTAIN
from fer.gallery import filters as filters_lib
from fer.gallery import index as index_lib
from fer.gallery.analyze import MULTIPLE
from fer.gallery.filters import NO_FACE
from fer.gallery.scan import GALLERY_MARKER

_THUMB_ROUTE = re.compile(r"^/thumbs/([0-9]{1,18})\.jpg$")
_PHOTO_ROUTE = re.compile(r"^/photos/([0-9]{1,18})$")
# Inside <script>, "<!--", "<script" and "</script" change how HTML parses the
# block; U+2028/9 end a JS line. JSON allows \u escapes for all of them.
_JSON_IN_HTML = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                               "\u2028": "\\u2028", "\u2029": "\\u2029"})
_MARKER = re.compile(r"__(DATA|TITLE)__")
_CHUNK = 1 << 20


def label_order(present: set[str]) -> list[str]:
    """Filter-bar order: canonical expression order, then `uncertain`, `multiple`."""
    ordered = [label for label in labels_lib.CANONICAL if label in present]
    ordered += sorted(present - set(ordered) - {UNCERTAIN, MULTIPLE, NO_FACE})  # Future models.
    return ordered + [label for label in (UNCERTAIN, MULTIPLE) if label in present]


def gallery_data(conn: sqlite3.Connection, serve: bool) -> dict:
    """The page's data: photos with faces and the filters each answers to per mode."""
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
            "filters": filters_lib.filters_by_mode(photo["faces"]),
        })
    present = {label for item in items for label in item["filters"]["any"]}
    emoji = {label: labels_lib.EMOJI.get(label, "") for label in present - {NO_FACE}}
    return {"photos": items, "labels": label_order(present), "emoji": emoji,
            "modes": list(filters_lib.MODES), "no_face": NO_FACE in present}


def fill(template: str, values: dict[str, str]) -> str:
    """Replaces each __KEY__ marker in one pass: inserted text is never rescanned."""
    return _MARKER.sub(lambda m: values[m.group(1)], template)


def render_page(conn: sqlite3.Connection, serve: bool = False) -> str:
    data = gallery_data(conn, serve)
    payload = json.dumps(data, ensure_ascii=False).translate(_JSON_IN_HTML)
    title = html.escape(f"fer gallery: {len(data['photos'])} photos")
    return fill(_PAGE, {"DATA": payload, "TITLE": title})


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


def _fd_path(fd: int) -> str | None:
    """The path the kernel holds for an open folder (Linux), else None."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def open_indexed_photo(record: dict) -> tuple[int, os.stat_result] | None:
    """Opens the file `record` (index.photo_file) names if it is still what was indexed.

    Its folder must resolve to the real path the scan recorded (or, for an index
    without one, contain no link), the file itself must not be a link (O_NOFOLLOW)
    and must be a regular file with the indexed size and mtime. Returns (fd, stat)
    or None; the caller closes fd.
    """
    directory, name = os.path.split(record["path"])
    expected = record["dir_real"] or os.path.normpath(directory)
    try:
        dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return None
    try:
        if (_fd_path(dir_fd) or os.path.realpath(directory)) != expected:
            return None
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError:  # ELOOP: the photo was replaced by a link.
        return None
    finally:
        os.close(dir_fd)
    st = os.fstat(fd)
    if (stat.S_ISREG(st.st_mode) and st.st_size == record["size"]
            and st.st_mtime_ns == record["mtime_ns"]):
        return fd, st
    os.close(fd)
    return None


def host_allowed(host: str | None, names: set[str], port: int, any_ip: bool) -> bool:
    """Whether a request's Host header addresses this server (not a rebound name).

    `names` are the loopback names and the bound address; with `any_ip` (bound to
    every interface) any IP literal is also fine, as rebinding needs a domain name.
    """
    if not host:
        return False
    name, sep, host_port = host.strip().lower().rpartition(":")
    if not sep or name.endswith(":") or (name.startswith("[") != name.endswith("]")):
        name, host_port = host.strip().lower(), "80"  # No port given.
    if host_port != str(port):
        return False
    if name in names:
        return True
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return any_ip


class _Handler(http.server.BaseHTTPRequestHandler):
    db_path: str = ""
    host_names: frozenset[str] = frozenset()
    any_ip: bool = False
    server_version = "fer-gallery"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        port = self.server.server_address[1]
        if not host_allowed(self.headers.get("Host"), self.host_names, port, self.any_ip):
            return self._send(403, b"this server answers only to its own address or "
                              b"localhost (Host header refused)", "text/plain", body)
        path = urllib.parse.urlsplit(self.path).path
        try:
            conn = index_lib.open_read_only(self.db_path)
        except FileNotFoundError as e:
            return self._send(503, str(e).encode(), "text/plain; charset=utf-8", body)
        try:
            if path in ("/", "/index.html"):
                page = render_page(conn, serve=True).encode()
                return self._send(200, page, "text/html; charset=utf-8", body)
            if m := _THUMB_ROUTE.match(path):
                blob = index_lib.thumbnail(conn, int(m.group(1)))
                if blob:
                    return self._send(200, blob, "image/jpeg", body)
            elif m := _PHOTO_ROUTE.match(path):
                record = index_lib.photo_file(conn, int(m.group(1)))
                opened = open_indexed_photo(record) if record else None
                if opened:
                    return self._send_file(*opened, record["path"], body)
            self._send(404, b"not found", "text/plain", body)
        finally:
            conn.close()

    def _headers(self, code: int, length: int, kind: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(length))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

    def _send(self, code: int, payload: bytes, kind: str, body: bool) -> None:
        self._headers(code, len(payload), kind)
        if body:
            self.wfile.write(payload)

    def _send_file(self, fd: int, st: os.stat_result, path: str, body: bool) -> None:
        with open(fd, "rb") as f:  # Streamed: a large photo is never held whole.
            kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
            self._headers(200, st.st_size, kind)
            left = st.st_size if body else 0
            try:
                while left > 0 and (chunk := f.read(min(_CHUNK, left))):
                    self.wfile.write(chunk)
                    left -= len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass  # The browser stopped reading (a closed tab): nothing to report.

    def log_message(self, format: str, *args) -> None:  # Quiet by default.
        pass


def make_server(db_path: str, host: str = "127.0.0.1", port: int = 8000
                ) -> http.server.ThreadingHTTPServer:
    """An HTTP server for the index at `db_path` (port 0 picks a free port).

    Raises FileNotFoundError without an index and OSError when it cannot listen
    (e.g. EADDRINUSE).
    """
    index_lib.open_existing(db_path).close()  # Also adds tables newer fer reads.
    server_cls = http.server.ThreadingHTTPServer
    if ":" in host:  # An IPv6 address.
        server_cls = type("V6Server", (server_cls,), {"address_family": socket.AF_INET6})
    bound = ipaddress.ip_address(host) if _is_ip(host) else None
    names = {"localhost", "127.0.0.1", "[::1]",
             f"[{host}]" if bound and bound.version == 6 else host.lower()}
    handler = type("GalleryHandler", (_Handler,), {
        "db_path": os.path.abspath(db_path), "host_names": frozenset(names),
        "any_ip": bool(bound and bound.is_unspecified)})
    server = server_cls((host, port), handler)
    server.daemon_threads = True
    return server


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


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
  nav { display:flex; gap:8px; overflow-x:auto; padding-bottom:2px; }
  #modes { margin-top:8px; font-size:13px; }
  nav button { border:1px solid #d6d3d1; background:var(--card); border-radius:999px;
           padding:6px 14px; font:inherit; cursor:pointer; white-space:nowrap; }
  #modes button { padding:3px 10px; }
  nav button.active { background:var(--accent); border-color:var(--accent); color:#fff; }
  main { display:grid; grid-template-columns:repeat(auto-fill, minmax(190px, 1fr));
         gap:16px; padding:20px; }
  figure { margin:0; background:var(--card); border-radius:10px; overflow:hidden;
           box-shadow:0 1px 3px rgba(0,0,0,.12); }
  .frame { position:relative; aspect-ratio:4/3; background:#e7e5e4; }
  .frame img { position:absolute; inset:0; width:100%; height:100%; object-fit:contain; }
  .box { position:absolute; border:2px solid rgba(37,99,235,.9); border-radius:3px; }
  .tag { position:absolute; left:-2px; bottom:100%; white-space:nowrap; font-size:11px;
         line-height:1.3; padding:0 3px; border-radius:3px; color:#fff;
         background:rgba(37,99,235,.9); }
  .box.low .tag { bottom:auto; top:100%; }
  figcaption { padding:8px 10px; display:flex; justify-content:space-between;
               align-items:baseline; gap:6px; }
  .main { white-space:nowrap; flex:none; }
  .label { font-weight:600; white-space:nowrap; } .conf { text-align:right; } .emoji { font-size:20px; margin-right:4px; }
  .face { white-space:nowrap; display:inline-block; }
  .conf, .name { color:var(--muted); font-size:13px; }
  .name { padding:0 10px 8px; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
  .empty { color:var(--muted); padding:20px; }
</style></head>
<body>
<header><h1>__TITLE__</h1><nav id="filters"></nav><nav id="modes"></nav></header>
<main id="grid"></main>
<script id="data" type="application/json">__DATA__</script>
<script>
// Which filters a photo answers to in each mode comes from Python (fer.gallery.filters):
// the page only looks them up, so it cannot disagree with `fer filter`.
const data = JSON.parse(document.getElementById('data').textContent);
const grid = document.getElementById('grid'), bar = document.getElementById('filters');
const modeBar = document.getElementById('modes');
const MODE_TEXT = {any: 'any face', all: 'all faces', largest: 'largest face'};
const pct = c => c == null ? '' : Math.round(100 * c) + '%';
const faceText = f => (data.emoji[f.label] || f.label) + '\u00a0' + pct(f.confidence);

function caption(p) {   // [emoji, label, one text per face]
  if (p.label === 'none') return ['', 'no face', []];
  if (p.label === 'multiple') return [data.emoji.multiple, 'multiple', p.faces.map(faceText)];
  return [data.emoji[p.label], p.label, [pct(p.confidence)]];
}

function card(p) {
  const fig = document.createElement('figure');
  fig.className = 'photo'; fig.dataset.label = p.label; fig.dataset.id = p.id;
  const a = document.createElement('a'); a.href = p.href; a.className = 'frame';
  a.target = '_blank'; a.rel = 'noopener'; a.style.display = 'block';
  const img = document.createElement('img');
  img.src = p.thumb; img.alt = p.name; img.loading = 'lazy';
  a.appendChild(img);
  img.addEventListener('load', () => {   // Face boxes and labels over the contained image.
    const fw = a.clientWidth, fh = a.clientHeight;
    const s = Math.min(fw / img.naturalWidth, fh / img.naturalHeight);
    const w = img.naturalWidth * s, h = img.naturalHeight * s;
    const ox = (fw - w) / 2, oy = (fh - h) / 2;
    for (const f of p.faces) {
      const b = document.createElement('div'); b.className = 'box';
      if (oy + f.box[1] * h < 16) b.classList.add('low');  // No room above: tag below.
      Object.assign(b.style, {left: ox + f.box[0] * w + 'px', top: oy + f.box[1] * h + 'px',
                              width: f.box[2] * w + 'px', height: f.box[3] * h + 'px'});
      const tag = document.createElement('span'); tag.className = 'tag';
      tag.textContent = faceText(f); b.title = f.label + ' ' + pct(f.confidence);
      b.appendChild(tag); a.appendChild(b);
    }
  });
  const [emoji, label, faces] = caption(p);
  const cap = document.createElement('figcaption');
  cap.innerHTML = '<span class="main"><span class="emoji"></span><span class="label"></span></span>' +
                  '<span class="conf"></span>';
  cap.querySelector('.emoji').textContent = emoji;
  cap.querySelector('.label').textContent = label;
  const conf = cap.querySelector('.conf');
  faces.forEach((text, i) => {   // Each face's "emoji pct" stays together on one line.
    const span = document.createElement('span'); span.className = 'face';
    span.textContent = text;
    conf.append(...(i ? [' ', span] : [span]));
  });
  const name = document.createElement('div'); name.className = 'name';
  name.textContent = p.name; name.title = p.path;
  fig.append(a, cap, name);
  fig.photo = p;
  return fig;
}

function state() {   // The filter lives in the URL: #label=happy&mode=all (or ?label=...).
  const q = new URLSearchParams(location.hash.slice(1) || location.search.slice(1));
  const mode = data.modes.includes(q.get('mode')) ? q.get('mode') : data.modes[0];
  return {label: q.get('label') || 'all', mode};
}

function go(label, mode) {
  location.hash = new URLSearchParams({label, mode}).toString();  // A history entry.
  render();  // Now: hashchange (Back, edited URLs) comes later.
}

const matches = (p, label, mode) => label === 'all' || p.filters[mode].includes(label);

function render() {
  const {label, mode} = state();
  for (const b of bar.children) {
    b.classList.toggle('active', b.dataset.filter === label);
    const n = data.photos.filter(p => matches(p, b.dataset.filter, mode)).length;
    b.querySelector('.count').textContent = n;
  }
  for (const b of modeBar.children) b.classList.toggle('active', b.dataset.mode === mode);
  let shown = 0;
  for (const fig of grid.querySelectorAll('figure')) {
    const visible = matches(fig.photo, label, mode);
    fig.hidden = !visible; shown += visible;
  }
  document.getElementById('empty')?.remove();
  if (!shown) grid.insertAdjacentHTML('beforeend', '<p id="empty" class="empty">No photos.</p>');
}

function button(filter, emoji, text) {
  const b = document.createElement('button');
  b.dataset.filter = filter;
  b.textContent = (emoji ? emoji + ' ' : '') + text + ' ';
  b.appendChild(document.createElement('span')).className = 'count';
  b.addEventListener('click', () => go(filter, state().mode));
  bar.appendChild(b);
}

button('all', '', 'All');
for (const label of data.labels) button(label, data.emoji[label], label);
if (data.no_face) button('none', '', 'no face');
for (const mode of data.modes) {
  const b = document.createElement('button');
  b.dataset.mode = mode; b.textContent = MODE_TEXT[mode] || mode;
  b.addEventListener('click', () => go(state().label, mode));
  modeBar.appendChild(b);
}
for (const p of data.photos) grid.appendChild(card(p));
window.addEventListener('hashchange', render);
render();
</script>
</body></html>
"""
