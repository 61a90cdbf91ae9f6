"""Training-only augmentation: flip, small shift/rotation/scale, pixel noise.

The seed names augmentation as its missing improvement. These changes keep an
expression's identity (a mirrored smile is still a smile). Randomness comes only
from the generator passed in, which grain's random_map seeds from the run's seed
and the record's position in the training stream (epoch and index), so a run
resumed mid-epoch augments every record as the uninterrupted run does.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np


@dataclasses.dataclass(frozen=True)
class AugmentOptions:
    """The strengths; their defaults live in configs/default.py (`augment_*`)."""

    flip: bool
    max_shift: float      # Fraction of the image side.
    max_rotation: float   # Degrees.
    max_scale: float      # Zoom in or out by up to this fraction.
    noise_std: float      # Gaussian pixel noise on the [0, 1] scale.

    @classmethod
    def from_config(cls, config) -> AugmentOptions:
        """config.augment_<field> for each field, so that config.json records them."""
        return cls(**{field.name: config[f"augment_{field.name}"]
                      for field in dataclasses.fields(cls)})


def augment(image: np.ndarray, rng: np.random.Generator, options: AugmentOptions,
            output_size: int | None = None) -> np.ndarray:
    """Randomly transforms one float32 (H, W) image in [0, 1]: flip, noise, affine warp.

    With `output_size`, the resize to output_size x output_size is folded into the
    same affine warp (one interpolation, cost set by the output size), so
    augmenting a 48x48 face for a 224x224 model costs one 224x224 warp.
    """
    image = np.asarray(image, np.float32)
    if image.ndim != 2:
        raise ValueError(f"augment expects one (H, W) image, got shape {image.shape}")
    h, w = image.shape
    out_h, out_w = (h, w) if output_size is None else (output_size, output_size)
    if options.flip and rng.random() < 0.5:
        image = image[:, ::-1]
    if options.noise_std > 0:  # Pixel noise of the source image (cheap at any output size).
        image = image + np.float32(options.noise_std) * rng.standard_normal((h, w), np.float32)
    angle = rng.uniform(-options.max_rotation, options.max_rotation)
    scale = 1.0 + rng.uniform(-options.max_scale, options.max_scale)
    dx, dy = rng.uniform(-options.max_shift, options.max_shift, 2) * (out_w, out_h)
    # Source pixel centres -> output pixel centres, then rotate/scale about the centre.
    resize = np.array([[out_w / w, 0, 0.5 * out_w / w - 0.5],
                       [0, out_h / h, 0.5 * out_h / h - 0.5], [0, 0, 1]])
    turn = np.vstack([cv2.getRotationMatrix2D((out_w / 2 - 0.5, out_h / 2 - 0.5), angle, scale),
                      [0, 0, 1]])
    matrix = (turn @ resize)[:2]
    matrix[:, 2] += (dx, dy)
    image = cv2.warpAffine(np.ascontiguousarray(image), matrix, (out_w, out_h),
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return np.clip(image, 0.0, 1.0, out=image)
