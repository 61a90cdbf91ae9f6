"""Reading photos fast and safely: header checks first, then a reduced-size decode.

A phone photo has 12 MP, but a face detector looks at 192x192 and the classifier at
48x48, so JPEGs are decoded with libjpeg's DCT scaling (1/2, 1/4, 1/8) straight to
about a megapixel: several times faster than a full decode and resize. Every file
is vetted from its header before any pixel is decoded, so a 20000x20000
decompression bomb, a truncated JPEG or a text file named .jpg is refused with a
reason instead of stopping a scan.
"""

from __future__ import annotations

import dataclasses
import io
import os
import warnings

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

PHOTO_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".dib", ".tif", ".tiff"})
MAX_PIXELS = 120_000_000     # Above any phone or camera photo; refuses bombs.
MAX_FILE_BYTES = 400 << 20   # 400 MiB.
WORK_SIDE = 960              # Long side photos are decoded/reduced to (at least).
EXIF_ORIENTATION = 0x0112
_JPEG_EOI, _JPEG_SOS = b"\xff\xd9", b"\xff\xda"
_PIL_FORMATS = {"JPEG", "PNG", "WEBP", "BMP", "DIB", "TIFF", "MPO"}


class PhotoError(Exception):
    """A file that cannot be used as a photo; the message is the reason shown to users."""


@dataclasses.dataclass
class Photo:
    """A decoded photo, upright, at working resolution.

    `image` is RGB uint8 (h, w, 3) with its long side between WORK_SIDE and twice
    that (or the original's, if smaller); `width`/`height` are the original's, upright.
    """

    image: np.ndarray
    width: int
    height: int
    format: str

    @property
    def scale(self) -> float:
        """Working pixels per original pixel."""
        return self.image.shape[1] / self.width


def is_photo_name(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in PHOTO_EXTENSIONS


def reduction_for(width: int, height: int, work_side: int = WORK_SIDE) -> int:
    """Largest JPEG DCT reduction (1, 2, 4, 8) keeping the long side >= work_side."""
    factor = 1
    while factor < 8 and max(width, height) / (factor * 2) >= work_side:
        factor *= 2
    return factor


_REDUCED_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
                  4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def read_photo(path: str, *, work_side: int = WORK_SIDE,
               max_pixels: int = MAX_PIXELS) -> Photo:
    """Reads `path` into an upright RGB `Photo`; raises PhotoError with the reason."""
    try:
        size = os.stat(path).st_size
        if size == 0:
            raise PhotoError("empty file (0 bytes)")
        if size > MAX_FILE_BYTES:
            raise PhotoError(f"file too large ({size >> 20} MiB > {MAX_FILE_BYTES >> 20})")
        with open(path, "rb") as f:
            data = f.read()
    except PhotoError:
        raise
    except OSError as e:
        raise PhotoError(f"cannot read: {e.strerror or e}") from None
    return decode_photo(data, work_side=work_side, max_pixels=max_pixels)


def decode_photo(data: bytes, *, work_side: int = WORK_SIDE,
                 max_pixels: int = MAX_PIXELS) -> Photo:
    """Decodes encoded image bytes; see `read_photo`."""
    if not data:
        raise PhotoError("empty file (0 bytes)")
    width, height, fmt, orientation = _read_header(data)
    if width * height > max_pixels:
        raise PhotoError(f"image too large ({width}x{height} = {width * height / 1e6:.0f} MP "
                         f"> {max_pixels / 1e6:.0f} MP); refused before decoding")
    if fmt in ("JPEG", "MPO"):
        # A file cut short has no end-of-image marker after its last scan.
        if data.rfind(_JPEG_EOI) < data.rfind(_JPEG_SOS) or _JPEG_SOS not in data:
            raise PhotoError("truncated JPEG (no end of image after the last scan)")
        factor = reduction_for(width, height, work_side)
        image = cv2.imdecode(np.frombuffer(data, np.uint8),
                             _REDUCED_FLAGS[factor] | cv2.IMREAD_IGNORE_ORIENTATION)
        if image is None:
            raise PhotoError("corrupt JPEG (decoder failed)")
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    else:
        image = _decode_other(data, fmt)
    image = _apply_orientation(image, orientation)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return Photo(image=_to_work_size(image, work_side), width=width, height=height,
                 format=fmt)


def from_array(image: np.ndarray, *, work_side: int = WORK_SIDE) -> Photo:
    """An in-memory uint8 image, (H, W) gray, (H, W, 3) RGB or (H, W, 4) RGBA, as a
    Photo reduced as decoded files are (so an array and its PNG give the same faces).

    Channels are taken as RGB, never BGR; alpha is composited on white.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image array, got "
                         f"{getattr(image, 'dtype', type(image).__name__)} (scale 16-bit "
                         f"or float images to 0..255 first)")
    channels = image.shape[2] if image.ndim == 3 else 1 if image.ndim == 2 else 0
    if channels not in (1, 3, 4) or 0 in image.shape:
        raise ValueError(f"expected an image array (H, W) gray, (H, W, 3) RGB or "
                         f"(H, W, 4) RGBA, got shape {image.shape}")
    if channels == 1:
        rgb = cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2RGB)
    elif channels == 4:
        rgb = _over_white(image[:, :, :3], image[:, :, 3:])
    else:
        rgb = image
    h, w = image.shape[:2]
    return Photo(image=_to_work_size(rgb, work_side), width=w, height=h, format="array")


def _to_work_size(image: np.ndarray, work_side: int) -> np.ndarray:
    """Reduces once to a long side of `work_side` if it is twice that or more."""
    h, w = image.shape[:2]
    if max(h, w) >= 2 * work_side:  # Non-JPEGs (or odd JPEG sizes) reduced here.
        s = work_side / max(h, w)
        image = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))),
                           interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image)


def _read_header(data: bytes) -> tuple[int, int, str, int]:
    """(width, height, format, EXIF orientation) from the header, no pixels decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's own bomb warning: we check below.
            with Image.open(io.BytesIO(data)) as im:
                width, height, fmt = im.width, im.height, im.format or "?"
                try:
                    orientation = int(im.getexif().get(EXIF_ORIENTATION, 1) or 1)
                except Exception:  # A broken EXIF block does not spoil the pixels.
                    orientation = 1
    except Image.DecompressionBombError as e:
        raise PhotoError(f"image too large; refused before decoding ({e})") from None
    except UnidentifiedImageError:
        raise PhotoError("not an image (content matches no image format)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise PhotoError(f"not a readable image ({type(e).__name__}: {e})") from None
    if fmt not in _PIL_FORMATS:
        raise PhotoError(f"unsupported image format {fmt}")
    if width < 1 or height < 1:
        raise PhotoError(f"image has no pixels ({width}x{height})")
    return width, height, fmt, orientation if 1 <= orientation <= 8 else 1


def _decode_other(data: bytes, fmt: str) -> np.ndarray:
    """PNG, WebP, BMP, TIFF (any depth, gray/alpha) -> RGB uint8."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8),
                         cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:  # OpenCV lacks some TIFF codecs and palette modes; PIL has them.
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                image = _pil_to_array(im)
        except Exception as e:
            raise PhotoError(f"corrupt or truncated {fmt} ({type(e).__name__}: {e})") from None
        bgr = False
    else:
        bgr = True
    image = _to_uint8(image)
    if image.ndim == 2:
        image = image[:, :, None]
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if channels == 2:  # Gray + alpha.
        gray, alpha = image[:, :, :1], image[:, :, 1:]
        rgb = np.repeat(gray, 3, axis=2)
        return _over_white(rgb, alpha)
    if channels >= 4:
        colour, alpha = image[:, :, :3], image[:, :, 3:4]
        rgb = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB) if bgr else colour
        return _over_white(np.ascontiguousarray(rgb), alpha)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if bgr else image


def _pil_to_array(im: Image.Image) -> np.ndarray:
    if im.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1"):
        im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
    elif im.mode.startswith("I;16"):
        return np.asarray(im, dtype=np.uint16)
    return np.asarray(im)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):  # HDR TIFFs: assume [0, 1].
        return (np.clip(np.nan_to_num(image), 0, 1) * 255 + 0.5).astype(np.uint8)
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    info = np.iinfo(image.dtype)
    scaled = (image.astype(np.float64) - info.min) / (info.max - info.min) * 255
    return scaled.astype(np.uint8)


def _over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composites onto white: transparent pixels' colours are arbitrary otherwise."""
    a = alpha.astype(np.float32) / 255
    out = rgb.astype(np.float32) * a + 255 * (1 - a)
    return (out + 0.5).astype(np.uint8)


def _apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turns pixels upright according to the EXIF orientation tag (1..8)."""
    ops = {
        2: lambda im: im[:, ::-1],
        3: lambda im: im[::-1, ::-1],
        4: lambda im: im[::-1],
        5: lambda im: np.swapaxes(im, 0, 1),
        6: lambda im: np.swapaxes(im, 0, 1)[:, ::-1],
        7: lambda im: np.swapaxes(im, 0, 1)[::-1, ::-1],
        8: lambda im: np.swapaxes(im, 0, 1)[::-1],
    }
    return ops[orientation](image) if orientation in ops else image


def thumbnail_jpeg(image: np.ndarray, side: int = 320, quality: int = 82) -> bytes:
    """A JPEG thumbnail (long side `side`) of an RGB image, for the gallery page."""
    h, w = image.shape[:2]
    s = min(1.0, side / max(h, w))
    small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))),
                       interpolation=cv2.INTER_AREA) if s < 1 else image
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("could not encode a thumbnail")
    return buf.tobytes()
