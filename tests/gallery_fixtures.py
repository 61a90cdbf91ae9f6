"""Photos, broken files and classifiers for the gallery and CLI tests.

Real faces come from scikit-image's bundled sample photos (astronaut: Eileen
Collins; camera: the cameraman), which ship with the package and need no
download; FER+ faces are composited onto backgrounds when FER_DATA is set.
"""

from __future__ import annotations

import glob
import io
import os
import struct
import zlib

import cv2
import numpy as np
from PIL import Image
from skimage import data as skdata

from fer import spec as spec_lib


def astronaut() -> np.ndarray:
    return skdata.astronaut()  # RGB (512, 512, 3); face near (172..278, 66..172).


def cameraman() -> np.ndarray:
    return skdata.camera()  # Gray (512, 512).


def landscape(face: np.ndarray, size=(480, 640), seed: int = 0) -> np.ndarray:
    """`face` (RGB) fitted into the left part of a textured size=(H, W) background."""
    h, w = size
    rng = np.random.default_rng(seed)
    bg = cv2.GaussianBlur(rng.integers(60, 200, (h, w, 3), dtype=np.uint8), (0, 0), 8)
    side = min(h, w)
    fitted = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    x = (w - side) // 4
    bg[:, x:x + side] = fitted
    return bg


def two_faces(size=(480, 960)) -> np.ndarray:
    left = landscape(astronaut(), (size[0], size[1] // 2), seed=1)
    right = landscape(np.repeat(cameraman()[..., None], 3, 2), (size[0], size[1] // 2), 2)
    return np.concatenate([left, right], axis=1)


def blank(size=(480, 640)) -> np.ndarray:
    return np.full(size + (3,), (120, 160, 200), np.uint8)


def save(path: str, rgb: np.ndarray, **kwargs) -> str:
    Image.fromarray(rgb).save(path, **kwargs)
    return path


def save_with_orientation(path: str, upright: np.ndarray, orientation: int) -> str:
    """Stores pixels so that applying EXIF `orientation` gives `upright` back."""
    inverse = {1: lambda im: im,
               3: lambda im: im.transpose(Image.Transpose.ROTATE_180),
               6: lambda im: im.transpose(Image.Transpose.ROTATE_90),
               8: lambda im: im.transpose(Image.Transpose.ROTATE_270)}
    stored = inverse[orientation](Image.fromarray(upright))
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, exif=exif, quality=92)
    return path


def write_good_photos(directory: str) -> dict[str, str]:
    """One photo of each kind the scanner must read; name -> path."""
    os.makedirs(directory, exist_ok=True)
    j = lambda name: os.path.join(directory, name)  # noqa: E731
    face = landscape(astronaut())
    paths = {
        "astronaut.jpg": save(j("astronaut.jpg"), face, quality=92),
        "rotated.jpg": save_with_orientation(j("rotated.jpg"), face, 6),
        "cameraman_gray.png": save(j("cameraman_gray.png"), cameraman()),
        "two_faces.jpg": save(j("two_faces.jpg"), two_faces(), quality=90),
        "blank.png": save(j("blank.png"), blank()),
        "astronaut.webp": save(j("astronaut.webp"), face, quality=90),
        "astronaut.bmp": save(j("astronaut.bmp"), face),
        "astronaut.tiff": save(j("astronaut.tiff"), face),
    }
    rgba = np.dstack([face, np.full(face.shape[:2], 255, np.uint8)])
    rgba[:40, :40, 3] = 0
    paths["astronaut_rgba.png"] = save(j("astronaut_rgba.png"), rgba)
    gray16 = (cv2.cvtColor(face, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257)
    cv2.imwrite(j("astronaut_16bit.png"), gray16)
    paths["astronaut_16bit.png"] = j("astronaut_16bit.png")
    return paths


def bomb_png(path: str, side: int = 20000) -> str:
    """A real, valid side x side gray PNG (zeros) of a few hundred KiB."""
    return constant_png(path, side, side, b"\0", bit_depth=8, color_type=0, level=1)


def constant_png(path: str, width: int, height: int, pixel: bytes, *, bit_depth: int,
                 color_type: int, level: int = 9) -> str:
    """A valid PNG of one repeated `pixel` (raw bytes, big-endian samples), written
    row by row: huge images in a few hundred KiB, never held decoded in memory.
    color_type is PNG's: 0 gray, 2 RGB, 4 gray+alpha, 6 RGBA."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload)))

    row = b"\0" + pixel * width  # Filter byte (none) + pixels.
    comp = zlib.compressobj(level)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth,
                                           color_type, 0, 0, 0)))
        body = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
        f.write(chunk(b"IDAT", body))
        f.write(chunk(b"IEND", b""))
    return path


def write_bad_files(directory: str) -> dict[str, str]:
    """Every kind of bad input the scan must skip with a reason; name -> path."""
    os.makedirs(directory, exist_ok=True)
    j = lambda name: os.path.join(directory, name)  # noqa: E731
    buf = io.BytesIO()
    Image.fromarray(landscape(astronaut())).save(buf, "JPEG", quality=90)
    good_jpeg = buf.getvalue()
    paths = {}
    open(j("empty.jpg"), "wb").close()
    paths["empty.jpg"] = j("empty.jpg")
    with open(j("truncated.jpg"), "wb") as f:
        f.write(good_jpeg[:len(good_jpeg) // 2])
    paths["truncated.jpg"] = j("truncated.jpg")
    with open(j("corrupt.jpg"), "wb") as f:  # A JPEG start, then noise.
        f.write(good_jpeg[:20] + np.random.default_rng(0).bytes(5000))
    paths["corrupt.jpg"] = j("corrupt.jpg")
    with open(j("notes.png"), "w") as f:
        f.write("not an image, only a name that says so\n")
    paths["notes.png"] = j("notes.png")
    paths["huge.png"] = bomb_png(j("huge.png"))
    os.symlink("loop.jpg", j("loop.jpg"))
    paths["loop.jpg"] = j("loop.jpg")
    with open(j("locked.jpg"), "wb") as f:
        f.write(good_jpeg)
    os.chmod(j("locked.jpg"), 0)
    paths["locked.jpg"] = j("locked.jpg")
    os.makedirs(j("sub"), exist_ok=True)
    os.symlink("..", j("sub/up"))  # Directory loop.
    return paths


def fer_composites(directory: str, count: int = 3) -> list[tuple[str, tuple]]:
    """FER+ faces upscaled onto photo-like backgrounds; needs FER_DATA (must exist).

    FER crops are cut tight around the face; a detector wants some head and
    background, so the face is upscaled to 200 px and its border replicated.
    Returns (path, face region (x0, y0, x1, y1) in the 640x480 photo) pairs.
    """
    root = os.environ["FER_DATA"]
    pngs = sorted(glob.glob(os.path.join(root, "ferplus", "FER2013Valid", "*.png")))[:count]
    if len(pngs) < count:
        raise FileNotFoundError(f"FER_DATA={root} lacks ferplus/FER2013Valid/*.png")
    os.makedirs(directory, exist_ok=True)
    out = []
    for i, png in enumerate(pngs):
        face = np.asarray(Image.open(png).convert("RGB"))
        face = cv2.resize(face, (200, 200), interpolation=cv2.INTER_CUBIC)
        head = cv2.copyMakeBorder(face, 100, 100, 100, 100, cv2.BORDER_REPLICATE)
        photo = landscape(head, seed=10 + i)  # 400 px head -> 480 px: face 240 px.
        x = (640 - 480) // 4
        region = (x + 120, 120, x + 360, 360)
        out.append((save(os.path.join(directory, f"fer_{i}.jpg"), photo, quality=92),
                    region))
    return out


class FakeClassifier:
    """Deterministic stand-in: the class is picked from the face's mean brightness.

    Used where the model does not matter (index, filters, page); it still sees the
    real crops, so different faces get different labels.
    """

    def __init__(self, label_set: str = "ferplus", input_shape=(48, 48, 1),
                 preprocessing: str = "none"):
        self.spec = spec_lib.ModelSpec.for_label_set(
            "fake", label_set, input_shape=tuple(input_shape), preprocessing=preprocessing)
        self.calls = 0
        self.faces_seen = 0
        self.last_faces = None

    def predict_probs(self, faces: np.ndarray) -> np.ndarray:
        faces = np.asarray(faces)
        assert faces.dtype == np.uint8 and faces.shape[1:] == self.spec.input_shape
        self.calls += 1
        self.faces_seen += len(faces)
        self.last_faces = faces
        k = self.spec.num_classes
        means = faces.reshape(len(faces), -1).mean(1)
        best = np.minimum((means / 256 * k).astype(int), k - 1)
        probs = np.full((len(faces), k), 0.2 / (k - 1), np.float32)
        probs[np.arange(len(faces)), best] = 0.8
        return probs


def export_tiny_model(out_dir: str) -> str:
    """A tiny conv + dense Flax model exported through fer.export to `out_dir`."""
    import flax.linen as nn
    import jax

    from fer.export import tflite

    class Tiny(nn.Module):
        num_classes: int

        @nn.compact
        def __call__(self, x, train: bool = False):
            x = nn.relu(nn.Conv(4, (3, 3), strides=(2, 2))(x))
            x = nn.avg_pool(x, (4, 4), strides=(4, 4))
            return nn.Dense(self.num_classes)(x.reshape(x.shape[0], -1))

    spec = spec_lib.ModelSpec.for_label_set("tiny", "ferplus")
    module = Tiny(spec.num_classes)
    variables = module.init(jax.random.PRNGKey(0), np.zeros((1, *spec.input_shape),
                                                             np.float32))
    images = np.random.default_rng(0).integers(0, 256, (8, *spec.input_shape), np.uint8)
    tflite.export(module, variables, spec, out_dir, validation_images=images)
    return out_dir
