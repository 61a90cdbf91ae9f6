"""Reading photos fast and safely: header checks first, then a reduced-size decode.

A phone photo has 12 MP, but a face detector looks at 192x192 and the classifier at
48x48, so JPEGs are decoded with libjpeg's DCT scaling (1/2, 1/4, 1/8) straight to
about a megapixel: several times faster than a full decode and resize. Every file
is vetted from its header before any pixel is decoded, so a 20000x20000
decompression bomb, a truncated JPEG or a text file named .jpg is refused with a
reason instead of stopping a scan.

Memory is budgeted in bytes, not only pixels: a 108 MP 16-bit RGBA PNG is under the
pixel limit but decodes to 824 MiB, so the decoder's peak is estimated from the
header (size x channels x stored bytes per sample, as that decoder holds them) and the
photo refused above MAX_DECODE_BYTES. What is
decoded is converted to 8-bit RGB (alpha composited in integers) and reduced in
bands of rows, so no full-size copy is made after the decode itself.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import warnings

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

try:  # HEIC/HEIF (iPhone photos) through libheif, where pillow-heif is installed.
    import pillow_heif
    pillow_heif.register_heif_opener()
    HEIF_SUPPORTED = True
except ImportError:
    HEIF_SUPPORTED = False

PHOTO_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".dib",
                              ".tif", ".tiff", ".heic", ".heif"})
MAX_PIXELS = 120_000_000     # Above any phone or camera photo; refuses bombs.
MAX_FILE_BYTES = 400 << 20   # 400 MiB.
MAX_DECODE_BYTES = 320 << 20  # Decoded pixels of one photo: 2 workers stay < 1 GiB.
_BAND_BYTES = 4 << 20        # Rows converted and reduced at a time.
WORK_SIDE = 960              # Long side photos are decoded/reduced to (at least).
EXIF_ORIENTATION = 0x0112
_JPEG_EOI, _JPEG_SOS = b"\xff\xd9", b"\xff\xda"
_PIL_FORMATS = {"JPEG", "PNG", "WEBP", "BMP", "DIB", "TIFF", "MPO", "HEIF"}
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
HEIF_MISSING = "HEIC/HEIF not supported: install pillow-heif (pip install pillow-heif)"


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


def read_photo(path: str, *, work_side: int = WORK_SIDE, max_pixels: int = MAX_PIXELS,
               max_bytes: int = MAX_DECODE_BYTES) -> Photo:
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
    return decode_photo(data, work_side=work_side, max_pixels=max_pixels,
                        max_bytes=max_bytes)


def decode_photo(data: bytes, *, work_side: int = WORK_SIDE,
                 max_pixels: int = MAX_PIXELS, max_bytes: int = MAX_DECODE_BYTES) -> Photo:
    """Decodes encoded image bytes; see `read_photo`."""
    if not data:
        raise PhotoError("empty file (0 bytes)")
    header = _read_header(data)
    width, height, fmt, orientation = (header.width, header.height, header.format,
                                       header.orientation)
    if width * height > max_pixels:
        raise PhotoError(f"image too large ({width}x{height} = {width * height / 1e6:.0f} MP "
                         f"> {max_pixels / 1e6:.0f} MP); refused before decoding")
    jpeg = fmt in ("JPEG", "MPO")
    factor = reduction_for(width, height, work_side) if jpeg else 1
    _check_budget(header, _DECODERS.get(fmt, ("cv2",))[0], max_bytes, factor)
    if jpeg:
        # A file cut short has no end-of-image marker after its last scan.
        if data.rfind(_JPEG_EOI) < data.rfind(_JPEG_SOS) or _JPEG_SOS not in data:
            raise PhotoError("truncated JPEG (no end of image after the last scan)")
        image = cv2.imdecode(np.frombuffer(data, np.uint8),
                             _REDUCED_FLAGS[factor] | cv2.IMREAD_IGNORE_ORIENTATION)
        if image is None:
            raise PhotoError("corrupt JPEG (decoder failed)")
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    else:
        image = _decode_other(data, header, work_side, max_bytes)
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


@dataclasses.dataclass(frozen=True)
class _Header:
    """What the header says, enough to refuse a file or size its decode."""

    width: int
    height: int
    format: str
    orientation: int
    channels: int      # As decoded (palettes expanded, alpha kept).
    sample_bits: int   # Per channel, as stored (16 for 16-bit PNGs, 32 for float TIFFs).
    pil_pixel_bytes: int  # PIL's own storage per pixel (RGB takes 4), for PIL decodes.

    def decode_bytes(self, decoder: str, jpeg_factor: int = 1) -> int:
        """Peak bytes the `decoder` ("cv2", "pil" or "heif") holds for the pixels.

        Measured: cv2.imdecode peaks at twice its output (which keeps 16 bits and
        alpha); PIL holds its image (RGB stored as 4 bytes, 16-bit RGB(A) cut to
        8 bits); libheif its YCbCr planes and the RGB(A) output.
        """
        w, h = -(-self.width // jpeg_factor), -(-self.height // jpeg_factor)
        sample = -(-self.sample_bits // 8)
        if decoder == "cv2":
            return 2 * w * h * self.channels * sample
        if decoder == "heif":  # Three planes at most, then 8-bit output.
            return w * h * (3 * sample + self.channels)
        return w * h * self.pil_pixel_bytes


def _read_header(data: bytes) -> _Header:
    """Size, format, EXIF orientation and decoded depth from the header, no pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's own bomb warning: we check below.
            with Image.open(io.BytesIO(data)) as im:
                width, height, fmt = im.width, im.height, im.format or "?"
                channels, bits, pil_bytes = _depth(im)
                try:
                    orientation = int(_exif(im, data).get(EXIF_ORIENTATION, 1) or 1)
                except Exception:  # A broken EXIF block does not spoil the pixels.
                    orientation = 1
    except Image.DecompressionBombError as e:
        raise PhotoError(f"image too large; refused before decoding ({e})") from None
    except UnidentifiedImageError:
        if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS and not HEIF_SUPPORTED:
            raise PhotoError(HEIF_MISSING) from None
        raise PhotoError("not an image (content matches no image format)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise PhotoError(f"not a readable image ({type(e).__name__}: {e})") from None
    if fmt not in _PIL_FORMATS:
        raise PhotoError(f"unsupported image format {fmt}")
    if width < 1 or height < 1:
        raise PhotoError(f"image has no pixels ({width}x{height})")
    return _Header(width, height, fmt, orientation if 1 <= orientation <= 8 else 1,
                   channels, bits, pil_bytes)


def _exif(im: Image.Image, data: bytes) -> Image.Exif:
    """The EXIF block, never decoding pixels: PIL's PNG getexif() decodes the whole
    image to look for an eXIf chunk after the pixel data, so PNGs are searched here."""
    if im.format != "PNG" or "exif" in im.info:
        return im.getexif()
    exif = Image.Exif()
    at = data.find(b"eXIf", 33)  # After the signature and IHDR.
    if at >= 0:
        exif.load(data[at + 4:at + 4 + int.from_bytes(data[at - 4:at], "big")])
    return exif


def _depth(im: Image.Image) -> tuple[int, int, int]:
    """(channels, bits per sample, PIL bytes per pixel) of an opened, unloaded image.

    PIL reports a 16-bit RGB(A) PNG as mode RGB(A); its raw mode ("RGBA;16B") or a
    HEIF's bit_depth tells the stored depth, which OpenCV keeps when decoding.
    """
    mode = im.mode
    alpha = "A" in mode or "transparency" in im.info
    bands = len(im.getbands())
    channels = max(bands, 4 if alpha else 3 if bands >= 3 or mode == "P" else 1)
    bits = 32 if mode in ("I", "F") else 16 if mode.startswith("I;16") else 8
    for tile in im.tile:
        raw = tile.args if isinstance(tile.args, str) else (
            tile.args[0] if tile.args and isinstance(tile.args[0], str) else "")
        match = re.search(r";(\d+)", raw)
        bits = max(bits, int(match.group(1)) if match else 0)
    bits = max(bits, int(im.info.get("bit_depth") or 0))
    pil_bytes = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4
    return channels, bits, pil_bytes


def _check_budget(header: _Header, decoder: str, max_bytes: int, factor: int = 1) -> None:
    need = header.decode_bytes(decoder, factor)
    if need > max_bytes:
        raise PhotoError(
            f"image needs {need / 2**20:.0f} MiB to decode ({header.width}x{header.height}, "
            f"{header.channels} channels x {header.sample_bits} bit) > the "
            f"{max_bytes / 2**20:.0f} MiB budget; refused before decoding")


# Decoders to try per format, leanest first (JPEG, MPO and other formats: OpenCV).
_DECODERS = {"PNG": ("pil",), "TIFF": ("pil", "cv2"), "HEIF": ("heif",),
             "WEBP": ("cv2", "pil"), "BMP": ("cv2", "pil"), "DIB": ("cv2", "pil")}


def _decode_other(data: bytes, header: _Header, work_side: int,
                  max_bytes: int) -> np.ndarray:
    """PNG, WebP, BMP, TIFF, HEIF (any depth, gray/alpha) -> RGB uint8, reduced to a
    long side of `work_side` if twice that or more, converted band by band."""
    fmt, error = header.format, "decoder failed"
    for i, decoder in enumerate(_DECODERS[fmt]):
        if i:  # A fallback (PIL lacks some TIFF codecs, OpenCV some BMP/WebP modes).
            _check_budget(header, decoder, max_bytes)
        try:
            if decoder == "cv2":
                image = cv2.imdecode(np.frombuffer(data, np.uint8),
                                     cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
                if image is None:
                    continue
                return _rgb_reduced(lambda y0, y1: image[y0:y1], *image.shape[:2], True,
                                    work_side)
            if decoder == "heif":  # libheif's RGB(A) array, already upright.
                image = np.asarray(pillow_heif.open_heif(io.BytesIO(data),
                                                         convert_hdr_to_8bit=True))
                return _rgb_reduced(lambda y0, y1: image[y0:y1], *image.shape[:2], False,
                                    work_side)
            with warnings.catch_warnings():  # Size checked: MAX_PIXELS and budget.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data)) as im:
                    im.load()
                    return _rgb_reduced(
                        lambda y0, y1: _pil_to_array(im.crop((0, y0, im.width, y1))),
                        im.height, im.width, False, work_side)
        except Exception as e:
            error = f"{type(e).__name__}: {e}"
    raise PhotoError(f"corrupt or truncated {fmt} ({error})")


def _rgb_reduced(rows, height: int, width: int, bgr: bool, work_side: int) -> np.ndarray:
    """Converts `rows(y0, y1)` (any depth and channels) to RGB uint8 a band at a time,
    reducing each band by an integer factor when the image is twice `work_side` or
    more, then to exactly `work_side`: memory beyond the decode stays a few bands."""
    long_side = max(height, width)
    factor = long_side // work_side if long_side >= 2 * work_side else 1
    step = max(1, _BAND_BYTES // (width * 8 * factor)) * factor
    out_w = max(1, round(width / factor))
    bands = []
    for y0 in range(0, height, step):
        band = _to_rgb(rows(y0, min(height, y0 + step)), bgr)
        if factor > 1:
            band = cv2.resize(band, (out_w, max(1, round(band.shape[0] / factor))),
                              interpolation=cv2.INTER_AREA)
        bands.append(band)
    image = bands[0] if len(bands) == 1 else np.concatenate(bands)
    if factor > 1:
        s = work_side / long_side
        image = cv2.resize(image, (max(1, round(width * s)), max(1, round(height * s))),
                           interpolation=cv2.INTER_AREA)
    return image


def _to_rgb(image: np.ndarray, bgr: bool) -> np.ndarray:
    """Any depth, gray, gray+alpha, colour or colour+alpha -> RGB uint8 (alpha on white)."""
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
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if bgr else np.ascontiguousarray(image)


def _pil_to_array(im: Image.Image) -> np.ndarray:
    if (im.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1")
            or (im.mode in ("L", "RGB") and "transparency" in im.info)):
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
    """Composites onto white: transparent pixels' colours are arbitrary otherwise.

    round((rgb * a + 255 * (255 - a)) / 255) in uint16 (at most 65152): exact, and
    2 bytes per sample where float32 took 4.
    """
    a = alpha.astype(np.uint16)
    out = rgb.astype(np.uint16) * a
    out += 255 * (255 - a) + 127
    out //= 255
    return out.astype(np.uint8)


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
