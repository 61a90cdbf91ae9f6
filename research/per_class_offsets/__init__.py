"""Would eight per-class offsets beat the one prior-correction tau? (README.md)"""
