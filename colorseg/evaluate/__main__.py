import sys

from colorseg.cli.evaluate import main

sys.exit(main())
