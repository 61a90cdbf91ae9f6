"""What each ingredient of an ensemble adds. (README.md)"""
