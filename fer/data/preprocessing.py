"""The seed's preprocessing variants (its Table 4) as pure functions on gray uint8 images.

Training, export and the gallery all call these same functions, so a model trained
with `preprocessing='equalize'` sees the same pixels at every stage. Every function
takes a 2-D (H, W) or 3-D (H, W, 1) uint8 array and returns uint8 of the same shape:
nothing here assumes a batch, a training step or a dataset.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

# Difference of Gaussians: the narrow blur keeps edges, the wide one the background.
DOG_SIGMAS = (1.0, 2.0)
DEFAULT_GAMMA = 0.75  # The seed's value (Table 4).


def _as_gray(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """(H, W) uint8 view of `image` and whether it carried a channel axis."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"preprocessing expects uint8 pixels, got {image.dtype}")
    if image.ndim == 3 and image.shape[-1] == 1:
        return image[..., 0], True
    if image.ndim == 2:
        return image, False
    raise ValueError(
        f"preprocessing expects a gray image (H, W) or (H, W, 1), got shape {image.shape}")


def _restore(gray: np.ndarray, had_channel: bool) -> np.ndarray:
    return gray[..., None] if had_channel else gray


def to_gray(image: np.ndarray) -> np.ndarray:
    """Any uint8 image (H, W), (H, W, 1), (H, W, 3) RGB or (H, W, 4) -> (H, W) uint8."""
    image = np.asarray(image)
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[-1] == 1:
        return image[..., 0]
    if image.ndim == 3 and image.shape[-1] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if image.ndim == 3 and image.shape[-1] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2GRAY)
    raise ValueError(f"cannot convert an image of shape {image.shape} to gray")


def none(image: np.ndarray) -> np.ndarray:
    """Identity (the seed's best: 'No preprocessing')."""
    _as_gray(image)
    return np.asarray(image)


def equalize(image: np.ndarray) -> np.ndarray:
    """Histogram equalisation: every image gets the same flat intensity histogram."""
    gray, had_channel = _as_gray(image)
    return _restore(cv2.equalizeHist(np.ascontiguousarray(gray)), had_channel)


def difference_of_gaussians(image: np.ndarray,
                            sigmas: tuple[float, float] = DOG_SIGMAS) -> np.ndarray:
    """Band-pass filter: keeps contours, drops flat shading; rescaled to 0..255."""
    gray, had_channel = _as_gray(image)
    x = gray.astype(np.float32)
    narrow = cv2.GaussianBlur(x, (0, 0), sigmas[0])
    wide = cv2.GaussianBlur(x, (0, 0), sigmas[1])
    dog = narrow - wide
    lo, hi = float(dog.min()), float(dog.max())
    if hi - lo < 1e-6:  # A flat image has no contours.
        out = np.full(gray.shape, 128, np.uint8)
    else:
        out = np.round((dog - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    return _restore(out, had_channel)


def gamma(image: np.ndarray, g: float = DEFAULT_GAMMA) -> np.ndarray:
    """Gamma correction V_out = 255 (V_in / 255)^g; g < 1 lightens (seed eq. 4)."""
    if g <= 0:
        raise ValueError(f"gamma must be positive, got {g}")
    gray, had_channel = _as_gray(image)
    table = np.round(255.0 * (np.arange(256) / 255.0) ** g).astype(np.uint8)
    return _restore(table[gray], had_channel)


def resize(image: np.ndarray, n: int) -> np.ndarray:
    """Square resize to n x n: area averaging to shrink, bilinear to enlarge."""
    if n <= 0:
        raise ValueError(f"image size must be positive, got {n}")
    image = np.asarray(image)
    had_channel = image.ndim == 3 and image.shape[-1] == 1
    gray = image[..., 0] if had_channel else image
    if gray.shape[:2] == (n, n):
        return image
    shrink = gray.shape[0] > n or gray.shape[1] > n
    out = cv2.resize(np.ascontiguousarray(gray), (n, n),
                     interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return _restore(out, had_channel)


_FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": none,
    "equalize": equalize,
    "dog": difference_of_gaussians,
    "gamma": gamma,
}
# Other spellings a config or a user may use.
_ALIASES = {"histeq": "equalize", "equalization": "equalize", "": "none",
            "difference_of_gaussians": "dog"}

NAMES: tuple[str, ...] = tuple(_FUNCTIONS)


def canonical_name(name: str) -> str:
    key = (name or "").strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _FUNCTIONS:
        raise ValueError(
            f"unknown preprocessing {name!r}; expected one of {list(NAMES)} "
            f"(or {sorted(k for k in _ALIASES if k)})")
    return key


def apply(name: str, image: np.ndarray) -> np.ndarray:
    """Applies the named variant ('none', 'equalize', 'dog', 'gamma') to a gray uint8 image."""
    return _FUNCTIONS[canonical_name(name)](image)
