"""Latency on ARM devices: `runner.py` runs there (numpy + ai-edge-litert only);
`python -m benchmarks.arm --ssh user@host --model M.tflite` ships it and collects
the JSON. See docs/arm.md."""
