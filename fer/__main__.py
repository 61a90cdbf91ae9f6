"""`python -m fer` is the `fer` console script."""

import sys

from fer.cli import main

if __name__ == "__main__":
    sys.exit(main())
