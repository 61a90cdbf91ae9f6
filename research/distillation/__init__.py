"""A single network distilled from the shipped ensemble: does it match it? (README.md)"""
