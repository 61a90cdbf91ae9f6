"""What `fer predict` does out of the box: the shipped model on a real photo.

The demo run of launch.py trains on synthetic faces; this shows the model fer
ships (fer/assets/model, trained on FER+) on scikit-image's bundled astronaut
portrait, offline, through the gallery's own detector and classifier.
"""

from __future__ import annotations


def show_shipped_model() -> None:
    """Prints the shipped model's faces and labels on the astronaut photo (or why not)."""
    try:
        from skimage import data as skdata

        from fer import labels as labels_lib
        from fer.gallery import analyze as analyze_lib
        from fer.gallery import photos as photos_lib
        from fer.gallery import scan as scan_lib
        model_dir = analyze_lib.default_model_dir()
        analyzer = scan_lib.make_analyzer(model_dir, "blazeface", thumbnail_side=None)
    except (ImportError, FileNotFoundError) as e:
        print(f"Shipped model demo skipped: {e}", flush=True)
        return
    image = skdata.astronaut()
    result = analyzer.analyze_photo(photos_lib.Photo(image, image.shape[1], image.shape[0],
                                                     "png"))
    line = "=" * 78
    print(f"\n{line}\nThe shipped model ({model_dir}) on a real photo (scikit-image "
          f"astronaut):\n{line}", flush=True)
    for face in result.faces:
        print(f"  face at {tuple(round(v, 2) for v in face.box)}: "
              f"{labels_lib.EMOJI.get(face.label, '')} {face.label} "
              f"{face.confidence:.0%}", flush=True)
    print("Your own photos: fer predict PHOTO...   |   fer scan DIR && fer gallery --serve",
          flush=True)
