"""Benchmarks: every table and figure of the docs comes from a command here."""
