"""Command line: ``python -m xentc bench [options]`` and ``python -m xentc config``."""
import sys

from .benchmark import main

if __name__ == "__main__":
    sys.exit(main())
