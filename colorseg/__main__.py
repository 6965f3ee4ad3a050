"""``python -m colorseg COMMAND``: see colorseg.cli."""

import sys

from colorseg.cli import main

if __name__ == "__main__":
    sys.exit(main())
