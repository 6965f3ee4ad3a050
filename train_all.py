"""Regenerate every weight in weights/ and the training report in reports/.

    python train_all.py                    # everything: colour nets, then segmentation
    python train_all.py --only colour      # or --only segmentation
    python train_all.py --help             # every flag (one grammar: --colour-*, --seg-*, run-wide flags)

The same command as ``python -m colorseg train`` (colorseg/cli/train.py), at the repository's root
where people look for it.
"""

import sys

from colorseg.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
