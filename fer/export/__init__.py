"""Export to TFLite (jax2tf) and the LiteRT runtime that runs the exported models.

`fer.export.tflite.export` / `export_workdir` write `model.tflite`, `model.json`
(ModelSpec) and `export.json`; `fer.export.runtime.LiteRTClassifier` reads them.
Submodules are imported on demand: TensorFlow is only needed for converting.
"""
