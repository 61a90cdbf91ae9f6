"""fer: facial-expression recognition with small CNNs in JAX/Flax.

    import fer
    faces = fer.analyze("photo.jpg")        # or a numpy RGB array, or a PIL image
    for photo in fer.analyze_folder("Pictures"):
        print(photo.path, photo.faces, photo.error)

The names below come from `fer.api` and are imported on first use, so that
`import fer` stays cheap (no numpy, OpenCV or LiteRT until a photo is analysed).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["FER", "Face", "PhotoError", "PhotoFaces", "analyze", "analyze_folder"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("fer.api"), name)
    raise AttributeError(f"module 'fer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
