"""The seed's Table 4: which face preprocessing trains best? (README.md)"""
