"""Data: TFDS builders for the real sets, the embedded demo set, preprocessing,
augmentation and the grain input pipeline (`fer.data.input_pipeline`)."""
