"""ml_collections configs: default.py and one per design (python launch.py --config ...)."""
