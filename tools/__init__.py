"""Tools that write the docs from measured results (not measurements themselves)."""
