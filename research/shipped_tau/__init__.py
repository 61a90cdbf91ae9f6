"""The shipped model's prior-correction tau: its trade-off, and re-tuning it. (README.md)"""
