"""Does a model of another label set of the same faces help? (README.md)"""
