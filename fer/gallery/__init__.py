"""Affective for the desktop: find faces in a photo collection, classify their
expressions, index them in SQLite and browse them by expression.

Modules: `photos` (safe, reduced-size decoding), `detect` (BlazeFace via LiteRT,
Haar), `analyze` (one photo -> labelled faces), `index` (SQLite), `scan`
(incremental, multi-process), `filters` (which expression filters a photo with
several faces answers to), `web` (static page or local server).
"""

from fer.gallery.analyze import (Classifier, PhotoAnalyzer, default_model_dir,
                                 load_classifier)

__all__ = ["Classifier", "PhotoAnalyzer", "default_model_dir", "load_classifier"]
