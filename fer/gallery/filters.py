"""Which filters a photo answers to: the one rule `fer filter` and the page share.

A photo's faces each carry an expression. A group photo belongs under the
expressions its faces show, read in one of three modes:

- `any`: under every expression any face shows (the default);
- `all`: under an expression only if every face shows it;
- `largest`: under the expression of its largest face (by box area).

Besides expressions, a photo with several faces answers to `multiple` in every
mode, and a photo without a face to `none` ("no face"). A face the model abstains
on has the label `uncertain` (fer.evaluation.abstention): it answers to that
filter, never to its best guess's.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from fer import labels as labels_lib
from fer.evaluation.abstention import UNCERTAIN
from fer.gallery.analyze import MULTIPLE

NO_FACE = "none"
MODES = ("any", "all", "largest")
DEFAULT_MODE = "any"
# Spellings `fer filter --label` accepts for the no-face filter.
_NO_FACE_WORDS = {NO_FACE, "no face", "no-face", "noface", "no_face"}


def _area(face: Mapping) -> float:
    _, _, w, h = face["box"]
    return w * h


def photo_filters(faces: Sequence[Mapping], mode: str = DEFAULT_MODE) -> set[str]:
    """The filter labels a photo with `faces` (dicts with `label`, `box`) answers to."""
    if mode not in MODES:
        raise ValueError(f"unknown filter mode {mode!r}; expected one of {', '.join(MODES)}")
    if not faces:
        return {NO_FACE}
    labels = [face["label"] for face in faces]
    if mode == "any":
        out = set(labels)
    elif mode == "all":
        out = set(labels) if len(set(labels)) == 1 else set()
    else:  # largest; the first face wins a tie, as the detector orders them.
        out = {max(faces, key=_area)["label"]}
    return out | ({MULTIPLE} if len(faces) > 1 else set())


def filters_by_mode(faces: Sequence[Mapping]) -> dict[str, list[str]]:
    """photo_filters for every mode, sorted: what the page embeds per photo."""
    return {mode: sorted(photo_filters(faces, mode)) for mode in MODES}


def parse_label(name: str) -> str:
    """A filter label from the user: any expression spelling, `multiple`, `uncertain`
    or `none`."""
    key = name.strip().lower()
    if key in (MULTIPLE, UNCERTAIN):
        return key
    if key in _NO_FACE_WORDS:
        return NO_FACE
    return labels_lib.canonical(key)


def select(photos: Iterable[Mapping], label: str, mode: str = DEFAULT_MODE):
    """The photos (dicts with `faces`) that answer to filter `label` in `mode`."""
    return (photo for photo in photos if label in photo_filters(photo["faces"], mode))
